// Package amqp is the server side of AMQP 1.0 for the local hub: a codec
// for the type system, frames, performatives, SASL and messages, and a
// connection engine that serves one accepted net.Conn.
//
// # Codec
//
// Marshal, Unmarshal, AppendValue and DecodeValue convert between Go
// values and the AMQP encoding (see the table on the types in types.go).
// Performatives and SASL frames are Go structs implementing Body; a
// message is a Message. Decoding checks every declared length against the
// input before allocating, bounds nesting, and never panics.
//
// # Connection engine
//
// Serve (or NewConn and Conn.Serve) runs one connection: protocol header,
// optional SASL (ANONYMOUS, MSSBCBS and PLAIN), open, sessions and links.
// Every link the peer attaches is handed to a LinkHandler on its own
// goroutine, which accepts or refuses it and then receives or sends
// messages on it.
//
// # Concurrency
//
// One goroutine owns all connection, session and link state; another
// reads frames. Link and Delivery methods are safe for concurrent use and
// hand their work to the owning goroutine. Conn.Close waits for every
// goroutine the connection started, LinkHandler calls included.
//
// # Errors
//
// Peer-visible errors are *Error values carrying an AMQP condition.
// Decoding errors wrap ErrDecode; encoding errors wrap ErrEncode; link
// operations after a detach return a *LinkError.
//
// # Logging
//
// ConnOptions.Logger receives connection events at Debug and Info; nil
// is silent. Payloads and SASL passwords are never logged.
package amqp
