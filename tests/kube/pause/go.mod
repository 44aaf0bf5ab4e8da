module gossamer.dev/pause

go 1.24
