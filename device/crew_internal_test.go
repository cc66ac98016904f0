package device

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/transporttest"
)

// crewTest is a dispatcher serving one fake connection with a crew.
type crewTest struct {
	t    *testing.T
	d    *dispatcher
	fake *transporttest.Fake
	o    *origin
	w    *crew
	wg   sync.WaitGroup // the calls' goroutines
}

// newCrewTest serves a fake connection with handler h, max handlers at
// once. Run it inside a synctest bubble.
func newCrewTest(t *testing.T, h MethodHandlerFunc, max int, timeout time.Duration) *crewTest {
	t.Helper()
	fake := transporttest.NewFake(nil)
	conn, err := fake.Dial(t.Context(), &transport.Config{HostName: "hub", DeviceID: "dev", Credential: testCredential(t)})
	if err != nil {
		t.Fatal(err)
	}
	o := &ClientOptions{MethodTimeout: timeout, MaxConcurrentMethods: max, Logger: slog.New(slog.DiscardHandler)}
	ct := &crewTest{t: t, fake: fake, o: newOrigin(conn)}
	ct.d = newDispatcher(context.Background(), h, o, &counters{})
	ct.w = ct.d.serve(ct.o)
	return ct
}

// invoke calls method n times at once; the statuses arrive on the
// returned channel, 0 for a call that failed.
func (ct *crewTest) invoke(n int) <-chan int {
	statuses := make(chan int, n)
	for range n {
		ct.wg.Go(func() { // owned by the test: ends with the call's answer, joined by close
			status, _, err := ct.fake.Invoke(context.Background(), "m", nil)
			if err != nil {
				status = 0
			}
			statuses <- status
		})
	}
	return statuses
}

// members returns how many goroutines serve the connection (each holds a
// slot) and how many of them wait for requests.
func (ct *crewTest) members() (members, waiting int) {
	ct.w.mu.Lock()
	defer ct.w.mu.Unlock()
	return len(ct.d.slots), ct.w.waiting
}

// close ends the connection and the dispatcher, and joins everything.
func (ct *crewTest) close() {
	ct.o.close()
	ct.d.shutdown(time.Second)
	ct.wg.Wait()
}

// TestCrewGrowsAndShrinks: a burst gets a member per slot, and once it is
// over the crew shrinks to maxWaiting members; calls one at a time then
// reuse them, starting no goroutine.
func TestCrewGrowsAndShrinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const max = 16
		release := make(chan struct{})
		ct := newCrewTest(t, func(context.Context, *MethodRequest) (*MethodResponse, error) {
			<-release
			return nil, nil
		}, max, time.Minute)
		synctest.Wait()
		if m, w := ct.members(); m != 1 || w != 1 {
			t.Errorf("idle connection: %d members, %d waiting; want 1, 1", m, w)
		}
		statuses := ct.invoke(max + 4)
		synctest.Wait()
		if m, w := ct.members(); m != max || w != 0 {
			t.Errorf("busy connection: %d members, %d waiting; want %d, 0", m, w, max)
		}
		close(release)
		for range max + 4 {
			if s := <-statuses; s != 200 {
				t.Errorf("status %d, want 200", s)
			}
		}
		synctest.Wait()
		if m, w := ct.members(); m != maxWaiting || w != maxWaiting {
			t.Errorf("after the burst: %d members, %d waiting; want %d, %d", m, w, maxWaiting, maxWaiting)
		}
		for range 5 {
			if s := <-ct.invoke(1); s != 200 {
				t.Errorf("status %d, want 200", s)
			}
			synctest.Wait()
			if m, w := ct.members(); m != maxWaiting || w != maxWaiting {
				t.Errorf("one call at a time: %d members, %d waiting; want %d, %d", m, w, maxWaiting, maxWaiting)
			}
		}
		ct.close()
	})
}

// TestCrewStopWhileBusy: stop returns at once even when every member is
// busy with a call; requests that arrive afterwards stay in the
// connection (for Run's shutdown to refuse), and the busy members leave
// when their calls are done.
func TestCrewStopWhileBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const max = 4
		release := make(chan struct{})
		started := make(chan struct{}, max+1)
		ct := newCrewTest(t, func(context.Context, *MethodRequest) (*MethodResponse, error) {
			started <- struct{}{}
			<-release
			return nil, nil
		}, max, time.Minute)
		statuses := ct.invoke(max)
		synctest.Wait()
		ct.w.stop()
		late := ct.invoke(1)
		synctest.Wait()
		if len(started) != max {
			t.Errorf("%d handlers started, want %d: a request after stop was taken", len(started), max)
		}
		close(release)
		for range max {
			if s := <-statuses; s != 200 {
				t.Errorf("status %d, want 200", s)
			}
		}
		synctest.Wait()
		if m, _ := ct.members(); m != 0 {
			t.Errorf("%d members after stop and their calls, want 0", m)
		}
		ct.o.close() // the late call's request is dropped with the connection
		ct.d.shutdown(time.Second)
		if s := <-late; s == 200 {
			t.Error("the request that arrived after stop was answered 200")
		}
		ct.wg.Wait()
	})
}

// TestCrewReplacesOverrunMember: a handler past its deadline is answered
// 504 on its behalf, and its slot goes to a new member at once, which
// serves the next request while the overrunning handler still runs.
func TestCrewReplacesOverrunMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stuck := make(chan struct{})
		ct := newCrewTest(t, func(ctx context.Context, req *MethodRequest) (*MethodResponse, error) {
			if req.RequestID == "1" {
				<-stuck // ignores its context
			}
			return nil, nil
		}, 1, 2*time.Second)
		first := ct.invoke(1)
		synctest.Wait()
		second := ct.invoke(1)
		if s := <-first; s != StatusGatewayTimeout {
			t.Errorf("overrunning call: status %d, want 504", s)
		}
		if s := <-second; s != 200 {
			t.Errorf("next call: status %d, want 200", s)
		}
		close(stuck)
		synctest.Wait()
		ct.close()
	})
}

// TestCrewFirstMemberWaitsForASlot: when every slot is held by handlers
// of an earlier connection, the new connection's first member waits, and
// serves once one is freed.
func TestCrewFirstMemberWaitsForASlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		handled := make(chan struct{}, 1)
		ct := newCrewTest(t, func(context.Context, *MethodRequest) (*MethodResponse, error) {
			handled <- struct{}{}
			return nil, nil
		}, 1, time.Minute)
		synctest.Wait()
		// Take the crew's slot back and start a second crew, as after a
		// reconnection while an old handler runs.
		ct.w.stop()
		synctest.Wait()          // its member has left, freeing its slot
		ct.d.slots <- struct{}{} // an old handler's
		ct.o.close()
		conn, err := ct.fake.Dial(t.Context(), &transport.Config{HostName: "hub", DeviceID: "dev", Credential: testCredential(t)})
		if err != nil {
			t.Fatal(err)
		}
		ct.o = newOrigin(conn)
		ct.w = ct.d.serve(ct.o)
		statuses := ct.invoke(1)
		synctest.Wait()
		if len(handled) != 0 {
			t.Fatal("a handler ran with no slot free")
		}
		<-ct.d.slots // the old handler returns
		if s := <-statuses; s != 200 {
			t.Errorf("status %d, want 200", s)
		}
		ct.close()
	})
}

func testCredential(t *testing.T) sas.Credential {
	t.Helper()
	cred, err := sas.NewKeyCredential("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}
