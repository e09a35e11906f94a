// Command quickstart publishes one persistent message to a durable queue with
// publisher confirms, consumes it and acknowledges it: the README's
// thirty-second tour, using the unmodified RabbitMQ Go client.
//
//	go run ./examples/quickstart                 # against amqp://guest:guest@127.0.0.1:5672/
//	AMQP_URL=amqp://… go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func main() {
	url := os.Getenv("AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	if err := run(url); err != nil {
		log.Fatal(err)
	}
}

func run(url string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}

	q, err := ch.QueueDeclare("hello", true, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("declare queue: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("enable confirms: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	confirm, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q.Name, false, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent,
		ContentType:  "text/plain",
		Body:         []byte("hello, sluice"),
	})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if ok, err := confirm.WaitContext(ctx); err != nil || !ok {
		return fmt.Errorf("publish not confirmed (ok=%v): %v", ok, err)
	}
	fmt.Println("published and confirmed: the message is on disk")

	deliveries, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	select {
	case d := <-deliveries:
		fmt.Printf("received %q\n", d.Body)
		return d.Ack(false)
	case <-ctx.Done():
		return fmt.Errorf("no message received: %w", ctx.Err())
	}
}
