package hubtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/hubtest"
)

// A job calls setSpeed on every fan of the third floor, selected by their
// twin tags, one over MQTT and one over AMQP. The fans start after the job:
// it reaches each device as soon as it connects, within the job's time.
func ExampleHub_ScheduleMethodJob() {
	ctx := context.Background()
	hub, err := hubtest.Start(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()

	mux := device.NewMethodMux()
	mux.HandleFunc("setSpeed", setSpeed)
	var fans []*hubtest.Identity
	for _, name := range []string{"fan-1", "fan-2", "pump-1"} {
		id, err := hub.AddDevice(name)
		if err != nil {
			log.Fatal(err)
		}
		kind := map[bool]string{true: "pump", false: "fan"}[name == "pump-1"]
		if err := id.SetTags(ctx, map[string]any{"kind": kind, "floor": 3}); err != nil {
			log.Fatal(err)
		}
		if kind == "fan" {
			fans = append(fans, id)
		}
	}

	job, err := hub.ScheduleMethodJob(ctx, hubtest.MethodJob{
		ID:               "fans-speed-2",
		Condition:        "tags.kind = 'fan' AND tags.floor = 3",
		Method:           "setSpeed",
		Payload:          json.RawMessage(`{"speed":2}`),
		MaxExecutionTime: time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.Status)

	for i, tr := range []hubtest.Transport{hubtest.MQTT, hubtest.AMQP} {
		client, err := fans[i].NewClient(tr, nil)
		if err != nil {
			log.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- client.Run(ctx, mux) }()
		defer func() { client.Close(); <-done }()
	}

	job, err = hub.WaitJob(ctx, "fans-speed-2")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.Status, job.Devices, "devices,", job.Succeeded, "succeeded")
	records, err := hub.DeviceJobs(ctx, "fans-speed-2")
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range records {
		fmt.Println(r.DeviceID, r.Status, r.Result.Status, string(r.Result.Payload))
	}
	// Output:
	// queued
	// completed 2 devices, 2 succeeded
	// fan-1 completed 200 {"speed":2}
	// fan-2 completed 200 {"speed":2}
}

// Twin tags select devices in queries, as in IoT Hub's query language.
func ExampleIdentity_SetTags() {
	ctx := context.Background()
	hub, err := hubtest.Start(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	for i, name := range []string{"sensor-a", "sensor-b", "sensor-c"} {
		id, err := hub.AddDevice(name)
		if err != nil {
			log.Fatal(err)
		}
		if err := id.SetTags(ctx, map[string]any{"site": map[string]any{"floor": i + 1}}); err != nil {
			log.Fatal(err)
		}
	}
	twins, err := hub.Query(ctx, "SELECT * FROM devices WHERE tags.site.floor >= 2")
	if err != nil {
		log.Fatal(err)
	}
	for _, raw := range twins {
		var twin struct{ DeviceID string }
		if err := json.Unmarshal(raw, &twin); err != nil {
			log.Fatal(err)
		}
		fmt.Println(twin.DeviceID)
	}
	_, err = hub.Query(ctx, "SELECT * FROM devices WHERE tags.site.floor >=")
	var hubErr *hubtest.Error
	if errors.As(err, &hubErr) {
		fmt.Println(hubErr.Code, hubErr.Message)
	}
	// Output:
	// sensor-b
	// sensor-c
	// 400004 Line 1:47 expected a property, a value or IS_DEFINED(...), found the end of the query
}

// With Options.Tier, the hub enforces an IoT Hub tier's limits: an S1 hub
// runs one job at a time.
func ExampleOptions_tier() {
	ctx := context.Background()
	hub, err := hubtest.Start(ctx, &hubtest.Options{Tier: "S1"})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	tomorrow := hubtest.MethodJob{Condition: "deviceId = 'any'", Method: "reboot", StartTime: time.Now().Add(24 * time.Hour)}
	for _, id := range []string{"first", "second"} {
		tomorrow.ID = id
		_, err := hub.ScheduleMethodJob(ctx, tomorrow)
		var hubErr *hubtest.Error
		if errors.As(err, &hubErr) {
			fmt.Println(id, hubErr.HTTPStatus, hubErr.Code, hubErr.Name)
		} else if err == nil {
			fmt.Println(id, "scheduled")
		}
	}
	// Output:
	// first scheduled
	// second 429 429004 ThrottlingMaxActiveJobCountExceeded
}
