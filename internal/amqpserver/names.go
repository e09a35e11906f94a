package amqpserver

import "strings"

// stripCRLF removes carriage returns and line feeds from an exchange or
// queue name, as RabbitMQ does with the names of declare, bind, unbind
// and delete: "a\r\nb" declares and names "ab".
func stripCRLF(name string) string {
	if !strings.ContainsAny(name, "\r\n") {
		return name
	}
	return strings.NewReplacer("\r", "", "\n", "").Replace(name)
}
