#!/usr/bin/env bash
# Fails when internal/amqp/methods_gen.go differs from what the generator
# writes from the AMQP spec, i.e. when someone edited the generated file or
# the generator without regenerating. Run from the repository root.
set -euo pipefail

spec=../shared/spec/amqp-rabbitmq-0.9.1.json
committed=internal/amqp/methods_gen.go

if [[ ! -f "$spec" ]]; then
	echo "check-generate: warning: $spec not found; skipping the generated-code check" >&2
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go run ./internal/amqp/internal/gen -spec "$spec" -out "$tmp/methods_gen.go"

if ! diff -u "$committed" "$tmp/methods_gen.go" >"$tmp/diff"; then
	echo "check-generate: $committed is out of date with the generator or the spec." >&2
	echo "Run 'make generate' and commit the result. Difference:" >&2
	head -n 60 "$tmp/diff" >&2
	exit 1
fi
echo "check-generate: $committed is up to date"
