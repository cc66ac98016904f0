package amqpwire

// Claims-based security: the put-token exchange on the $cbs node.
const (
	// CBSAddress is the node that takes put-token requests; the client
	// attaches a sender and a receiver to it.
	CBSAddress = "$cbs"
	// CBSReplyTo is the reply-to of put-token requests.
	CBSReplyTo = "cbs"

	// OperationProperty names the operation of a CBS request.
	OperationProperty = "operation"
	// PutTokenOperation is the operation that presents a token.
	PutTokenOperation = "put-token"
	// TypeProperty names the type of the token presented.
	TypeProperty = "type"
	// SASTokenType is the token type of a SAS token, as the C and Node.js
	// SDKs send it.
	SASTokenType = "servicebus.windows.net:sastoken"
	// IoTHubSASTokenType is the token type of a SAS token as the C# SDK
	// sends it.
	IoTHubSASTokenType = "azure-devices.net:sastoken"
	// NameProperty names the audience of the token: the resource it is
	// presented for.
	NameProperty = "name"

	// StatusCodeProperty carries the status of a CBS response, an integer;
	// 200 means the token was accepted.
	StatusCodeProperty = "status-code"
	// StatusDescriptionProperty carries the reason of a CBS response.
	StatusDescriptionProperty = "status-description"
)
