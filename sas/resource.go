package sas

// Resource returns the resource URI that a device's or module's token must
// cover: "{host}/devices/{device}" or "{host}/devices/{device}/modules/{module}".
// It is not URL-encoded; Sign encodes it.
func Resource(host, deviceID, moduleID string) string {
	r := host + "/devices/" + deviceID
	if moduleID != "" {
		r += "/modules/" + moduleID
	}
	return r
}
