// A WAGI handler in Go: the query string, the X-Greeting header and the request body, as JSON.
// Build with GOOS=wasip1 GOARCH=wasm (Go 1.21 or later).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

type reply struct {
	Language string `json:"language"`
	Method   string `json:"method"`
	Query    string `json:"query"`
	Greeting string `json:"greeting"`
	Length   int    `json:"length"`
	Body     string `json:"body"`
}

func main() {
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Print("Status: 500 Internal Server Error\n\n")
		return
	}
	out, _ := json.Marshal(reply{
		Language: "Go",
		Method:   os.Getenv("REQUEST_METHOD"),
		Query:    os.Getenv("QUERY_STRING"),
		Greeting: os.Getenv("HTTP_X_GREETING"),
		Length:   len(body),
		Body:     string(body),
	})
	fmt.Printf("Content-Type: application/json\n\n%s\n", out)
}
