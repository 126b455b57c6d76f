module warren.interop/go

go 1.19

// amqp091-go comes from Debian's golang-github-rabbitmq-amqp091-go-dev, not from the module proxy: the suite builds
// offline (GOPROXY=off, GOFLAGS=-mod=mod; see run). The version is the Debian package's.
require github.com/rabbitmq/amqp091-go v1.5.0

replace github.com/rabbitmq/amqp091-go => /usr/share/gocode/src/github.com/rabbitmq/amqp091-go
