package hubtest

import (
	"context"
)

// SetTags merges tags into the identity's twin tags through the hub's
// service API (PATCH /twins/{id}), as a cloud application sets them: a
// nil value removes a tag, a map merges into a map. Tag values are
// booleans, numbers, strings and maps of them, within IoT Hub's limits; a
// refusal is an *Error (400004). Jobs and queries select devices by their
// tags.
func (id *Identity) SetTags(ctx context.Context, tags map[string]any) error {
	if _, err := id.hub.hub.ServiceClient().UpdateTwinTags(ctx, id.deviceID, id.moduleID, tags, ""); err != nil {
		return hubError("set tags of "+id.name(), err)
	}
	return nil
}

// Tags returns the identity's twin tags (GET /twins/{id}); numbers are
// float64.
func (id *Identity) Tags(ctx context.Context) (map[string]any, error) {
	twin, err := id.hub.hub.ServiceClient().GetTwin(ctx, id.deviceID, id.moduleID)
	if err != nil {
		return nil, hubError("get tags of "+id.name(), err)
	}
	return twin.Tags, nil
}
