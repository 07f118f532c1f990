module example.com/wasmgate/handler

go 1.23
