package mqttwire

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseDPSResponseTopic(t *testing.T) {
	tests := []struct {
		topic string
		want  DPSResponse
		bad   bool
	}{
		{topic: "$dps/registrations/res/202/?$rid=1&retry-after=3", want: DPSResponse{Status: 202, RequestID: "1", RetryAfter: 3 * time.Second}},
		{topic: "$dps/registrations/res/200/?$rid=7c2d", want: DPSResponse{Status: 200, RequestID: "7c2d"}},
		{topic: "$dps/registrations/res/429/?retry-after=10&$rid=x", want: DPSResponse{Status: 429, RequestID: "x", RetryAfter: 10 * time.Second}},
		{topic: "$dps/registrations/res/401/?$rid=a%20b&other=1", want: DPSResponse{Status: 401, RequestID: "a b"}},
		{topic: "$dps/registrations/res/200/?$rid=", bad: true},
		{topic: "$dps/registrations/res/2000/?$rid=1", bad: true},
		{topic: "$dps/registrations/res/ok/?$rid=1", bad: true},
		{topic: "$dps/registrations/res/202/?$rid=1&retry-after=-1", bad: true},
		{topic: "$dps/registrations/res/202/?$rid=1&retry-after=soon", bad: true},
		{topic: "$dps/registrations/res/202/?$rid=1&retry-after=99999", bad: true},
		{topic: "$dps/registrations/res/202?$rid=1", bad: true},
		{topic: "$iothub/methods/res/200/?$rid=1", bad: true},
		{topic: "$dps/registrations/res/200/?$rid=%zz", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			got, err := ParseDPSResponseTopic(tt.topic)
			if tt.bad {
				if !errors.Is(err, ErrBadDPSTopic) {
					t.Errorf("ParseDPSResponseTopic = %+v, %v; want ErrBadDPSTopic", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDPSRequestTopic(t *testing.T) {
	tests := []struct {
		topic string
		want  DPSRequest
		bad   bool
	}{
		{topic: DPSRegisterTopic("5"), want: DPSRequest{Kind: DPSRegister, RequestID: "5"}},
		{topic: DPSPollTopic("6", "4.d0a671905ea5b2c8.e7173b7b-0e54"), want: DPSRequest{Kind: DPSPoll, RequestID: "6", OperationID: "4.d0a671905ea5b2c8.e7173b7b-0e54"}},
		{topic: "$dps/registrations/PUT/iotdps-register/?$rid=1b2f-uuid", want: DPSRequest{Kind: DPSRegister, RequestID: "1b2f-uuid"}},
		{topic: "$dps/registrations/GET/iotdps-get-operationstatus/?operationId=op&$rid=2", want: DPSRequest{Kind: DPSPoll, RequestID: "2", OperationID: "op"}},
		{topic: "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2", bad: true},
		{topic: "$dps/registrations/PUT/iotdps-register/?rid=1", bad: true},
		{topic: "$dps/registrations/PUT/iotdps-register/", bad: true},
		{topic: "$dps/registrations/POST/iotdps-register/?$rid=1", bad: true},
		{topic: "$iothub/methods/POST/m/?$rid=1", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			got, err := ParseDPSRequestTopic(tt.topic)
			if tt.bad {
				if !errors.Is(err, ErrBadDPSTopic) {
					t.Errorf("ParseDPSRequestTopic = %+v, %v; want ErrBadDPSTopic", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDPSUsername(t *testing.T) {
	u := DPSUsername("0ne0001A2B3", "sn-007", "iotdevice/0.1 (go)")
	if want := "0ne0001A2B3/registrations/sn-007/api-version=2019-03-31&ClientVersion=iotdevice%2F0.1+%28go%29"; u != want {
		t.Errorf("DPSUsername = %q, want %q", u, want)
	}
	if !IsDPSUsername(u) || IsDPSUsername("hub.azure-devices.net/dev-1/?api-version=2021-04-12") {
		t.Error("IsDPSUsername tells a registration's username from a device's wrongly")
	}
	tests := []struct {
		username string
		want     DPSIdentity
		bad      bool
	}{
		{username: u, want: DPSIdentity{IDScope: "0ne0001A2B3", RegistrationID: "sn-007", APIVersion: "2019-03-31"}},
		{username: "scope/registrations/reg/api-version=2021-06-01", want: DPSIdentity{IDScope: "scope", RegistrationID: "reg", APIVersion: "2021-06-01"}},
		{username: "scope/registrations/reg/", bad: true},
		{username: "scope/registrations//api-version=2019-03-31", bad: true},
		{username: "/registrations/reg/api-version=2019-03-31", bad: true},
		{username: "a/b/registrations/reg/api-version=2019-03-31", bad: true},
		{username: "scope/devices/reg/api-version=2019-03-31", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseDPSUsername(tt.username)
		if (err != nil) != tt.bad {
			t.Errorf("ParseDPSUsername(%q) = %+v, %v; want failure %v", tt.username, got, err, tt.bad)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseDPSUsername(%q) (-want +got):\n%s", tt.username, diff)
		}
	}
}

// FuzzDPSTopics: the parsers never panic, and what the writers write reads
// back the same.
func FuzzDPSTopics(f *testing.F) {
	f.Add("1", "op", 3, "$dps/registrations/res/202/?$rid=1&retry-after=3")
	f.Add("a b&c=d", "4.x.y", 0, "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=z")
	f.Add("", "", -1, "scope/registrations/reg/api-version=2019-03-31")
	f.Fuzz(func(t *testing.T, rid, op string, retry int, raw string) {
		_, _ = ParseDPSResponseTopic(raw)
		_, _ = ParseDPSRequestTopic(raw)
		_, _ = ParseDPSUsername(raw)
		if rid == "" || op == "" {
			return
		}
		retry = retry % (maxRetryAfter + 1)
		r, err := ParseDPSResponseTopic(DPSResponseTopic(200, rid, retry))
		if err != nil || r.RequestID != rid || (retry > 0 && r.RetryAfter != time.Duration(retry)*time.Second) {
			t.Fatalf("response topic for %q, %d read back as %+v, %v", rid, retry, r, err)
		}
		q, err := ParseDPSRequestTopic(DPSPollTopic(rid, op))
		if err != nil || q.RequestID != rid || q.OperationID != op || q.Kind != DPSPoll {
			t.Fatalf("poll topic for %q, %q read back as %+v, %v", rid, op, q, err)
		}
	})
}
