module gossamer.dev/interop/golden

go 1.25.0

require github.com/hashicorp/go-msgpack/v2 v2.1.5
