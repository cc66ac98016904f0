// Package transporttest helps test code built on the transport contract,
// as net/http/httptest does for HTTP:
//
//   - Fake is an in-memory transport for testing code built on
//     device.Client without a network or a hub: invoke methods as the
//     cloud would, and make connections fail, drop or be refused.
//   - TestDialer is the conformance suite that every transport.Dialer
//     must pass, such as the adapters of packages transport/mqtt and
//     transport/amqp, or a transport of your own.
//
// A complete test of a handler:
//
//	func TestTurnOnFan(t *testing.T) {
//		fake := transporttest.NewFake(nil)
//		cred, _ := sas.NewKeyCredential(base64.StdEncoding.EncodeToString([]byte("test-key")), "", 0)
//		client, err := device.NewClient("hub.example", "fan-1", cred, &device.ClientOptions{Transport: fake})
//		if err != nil {
//			t.Fatal(err)
//		}
//		mux := device.NewMethodMux()
//		mux.HandleFunc("turnOnFan", turnOnFan)
//		go client.Run(t.Context(), mux)
//		defer client.Close()
//
//		status, payload, err := fake.Invoke(t.Context(), "turnOnFan", []byte(`{"speed":2}`))
//		if err != nil || status != 200 {
//			t.Fatalf("turnOnFan: status %d, err %v", status, err)
//		}
//		_ = payload // check the JSON your handler answered
//	}
//
// The conformance suite needs a hub to talk to; see TestDialer for a
// transport tested against the Fake's own hub side.
package transporttest
