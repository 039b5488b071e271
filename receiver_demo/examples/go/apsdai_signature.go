// Verify an APSDAI webhook (X-Apsdai-Token and X-Apsdai-Signature-256), standard library only.
// The same rules as receiver_demo/verify.py, with the same reasons. Copy this file (rename the
// package, drop main); Go 1.19+.
//
//	go run apsdai_signature.go sign SECRET TIMESTAMP_MS [SECRET TIMESTAMP_MS ...]
//	     prints the X-Apsdai-Token of each pair, one a line
//	go run apsdai_signature.go verify MODE SECRET PREVIOUS_SECRET FILE...
//	     FILE: a request as received (request line optional, headers, empty line, body); "-" is stdin.
//	     Prints "ok" or "refused: REASON" a line per file; exits 1 if any was refused.
//	     PREVIOUS_SECRET is "" unless the sender is rotating its secret. APSDAI_NOW_MS=... checks
//	     the timestamp as of that moment instead of now (a request captured earlier).
//	     (Exit status 2 is a usage error; `go run` reports every failure as 1.)
//
// In a receiver: v := Verify(r.Header, body, "signature", secret, "", 300, time.Now())
//
// Test vector: timestamp 1700000000000, secret "SECtest" -> aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// What Python's str.strip() removes, within the bytes a header can carry: strings.TrimSpace
// differs (it reads UTF-8, and keeps \x1c-\x1f), so the verifiers agree to the byte.
const edgeSpace = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"

// trim removes edgeSpace bytes from both ends (strings.Trim would read the cutset as UTF-8).
func trim(s string) string {
	for len(s) > 0 && strings.IndexByte(edgeSpace, s[0]) >= 0 {
		s = s[1:]
	}
	for len(s) > 0 && strings.IndexByte(edgeSpace, s[len(s)-1]) >= 0 {
		s = s[:len(s)-1]
	}
	return s
}

// Verification is the answer: Reason is "" when OK, and never contains a secret.
type Verification struct {
	OK     bool
	Reason string
}

func hmacSHA256(secret string, message ...[]byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret)) // Go strings are UTF-8 bytes already
	for _, m := range message {
		mac.Write(m)
	}
	return mac.Sum(nil)
}

// Token is the X-Apsdai-Token in signature mode: Base64 of HMAC-SHA256(secret, timestamp + "\n" + secret), URL-encoded once.
func Token(secret, timestampMs string) string {
	b64 := base64.StdEncoding.EncodeToString(hmacSHA256(secret, []byte(timestampMs+"\n"+secret)))
	// Base64 uses only A-Z a-z 0-9 + / =; on those url.QueryEscape gives exactly Python's
	// quote_plus (+ -> %2B, / -> %2F, = -> %3D). It differs on "~", never in Base64.
	return url.QueryEscape(b64)
}

// BodySignature is one X-Apsdai-Signature-256 entry: "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body).
func BodySignature(secret, timestampMs string, body []byte) string {
	return "sha256=" + hex.EncodeToString(hmacSHA256(secret, []byte(timestampMs+"."), body))
}

// Constant time, as Python's hmac.compare_digest (which also reveals the length).
func same(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// 1-15 digits: epoch ms until the year 33658 (fits an int64).
func isTimestamp(s string) bool {
	if len(s) < 1 || len(s) > 15 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Go keeps a header's raw bytes; Python (and Java, Node) read them as ISO-8859-1 and compare UTF-8:
// convert, so a password such as "pässword" compares the same way everywhere.
func latin1ToUTF8(s string) string {
	runes := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		runes[i] = rune(s[i])
	}
	return string(runes)
}

// header looks a name up in any casing (an http.Header is a map[string][]string); repeated ones
// are joined with ", ". ok is false when it is absent.
func header(headers map[string][]string, name string) (value string, ok bool) {
	var values []string
	for k, v := range headers {
		if strings.EqualFold(k, name) {
			values, ok = append(values, v...), true
		}
	}
	return strings.Join(values, ", "), ok
}

// Verify checks one request. headers: r.Header, or any map in any casing. body: the raw bytes
// received, or nil not to check X-Apsdai-Signature-256. previousSecret ("" if none): during a
// rotation the old secret, accepted too. mode must be "signature" or "password".
func Verify(headers map[string][]string, body []byte, mode, secret, previousSecret string, toleranceS int64, now time.Time) Verification {
	if mode != "signature" && mode != "password" {
		panic("mode must be signature or password, not " + mode) // a programming error
	}
	if secret == "" {
		return Verification{false, "no secret configured on the receiver"} // "" would match ""
	}
	secrets := []string{secret}
	if previousSecret != "" {
		secrets = append(secrets, previousSecret)
	}
	token, _ := header(headers, "X-Apsdai-Token")
	timestamp, hasTimestamp := header(headers, "X-Apsdai-Timestamp")
	if token == "" {
		return Verification{false, "missing X-Apsdai-Token header"}
	}

	if mode == "password" {
		// The timestamp is not signed in this mode: its age proves nothing, only its format is checked.
		if hasTimestamp && !isTimestamp(timestamp) {
			return Verification{false, "X-Apsdai-Timestamp is not epoch milliseconds (digits only)"}
		}
		for _, s := range secrets {
			if same(latin1ToUTF8(token), s) {
				return verifyBody(headers, secrets, timestamp, hasTimestamp, body)
			}
		}
		return Verification{false, "password does not match"}
	}
	if timestamp == "" {
		return Verification{false, "missing X-Apsdai-Timestamp header"}
	}
	if !isTimestamp(timestamp) {
		return Verification{false, "X-Apsdai-Timestamp is not epoch milliseconds (digits only)"}
	}
	sentMs, _ := strconv.ParseInt(timestamp, 10, 64)
	skewMs := now.UnixMilli() - sentMs
	abs := skewMs
	if abs < 0 {
		abs = -abs
	}
	if abs > toleranceS*1000 {
		seconds := (abs + 999) / 1000 // round up: 300.2 s never reads as "300 s"
		direction := "old"
		if skewMs < 0 {
			direction = "in the future"
		}
		return Verification{false, fmt.Sprintf("timestamp is %d s %s (tolerance %d s)", seconds, direction, toleranceS)}
	}
	for _, s := range secrets {
		if same(token, Token(s, timestamp)) {
			return verifyBody(headers, secrets, timestamp, true, body)
		}
	}
	return Verification{false, "signature does not match: check the secret"}
}

func verifyBody(headers map[string][]string, secrets []string, timestamp string, hasTimestamp bool, body []byte) Verification {
	sent, present := header(headers, "X-Apsdai-Signature-256")
	if !present || body == nil {
		return Verification{true, ""} // the seed's senders do not sign the body
	}
	if !hasTimestamp || !isTimestamp(timestamp) {
		return Verification{false, "X-Apsdai-Signature-256 needs X-Apsdai-Timestamp"}
	}
	// "sha256=<new>, sha256=<old>" during a rotation: any entry may match any of our secrets.
	for _, part := range strings.Split(sent, ",") {
		for _, s := range secrets {
			if same(trim(part), BodySignature(s, timestamp, body)) {
				return Verification{true, ""}
			}
		}
	}
	return Verification{false, "body signature does not match: the body was altered, or check the secret"}
}

// ---- the command line ----

// verifyFile reads a request file: its headers and its body, byte for byte.
func verifyFile(file, mode, secret, previousSecret string, now time.Time) (Verification, error) {
	var raw []byte
	var err error
	if file == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(file)
	}
	if err != nil {
		return Verification{}, err
	}
	crlf, lf := bytes.Index(raw, []byte("\r\n\r\n")), bytes.Index(raw, []byte("\n\n"))
	head, body := raw, []byte{}
	if crlf >= 0 && (lf < 0 || crlf < lf) {
		head, body = raw[:crlf], raw[crlf+4:]
	} else if lf >= 0 {
		head, body = raw[:lf], raw[lf+2:]
	}
	headers := map[string][]string{}
	for _, line := range strings.Split(string(head), "\n") {
		line = strings.TrimSuffix(line, "\r")
		colon := strings.Index(line, ":")
		if colon <= 0 || strings.Contains(line[:colon], " ") {
			continue // the request line, or not a header
		}
		name := strings.ToLower(line[:colon])
		headers[name] = append(headers[name], trim(line[colon+1:]))
	}
	return Verify(headers, body, mode, secret, previousSecret, 300, now), nil
}

func main() {
	args := os.Args[1:]
	if len(args) >= 3 && args[0] == "sign" && len(args)%2 == 1 {
		for i := 1; i < len(args); i += 2 {
			fmt.Println(Token(args[i], args[i+1]))
		}
		return
	}
	if len(args) >= 5 && args[0] == "verify" {
		now := time.Now()
		if ms, err := strconv.ParseInt(os.Getenv("APSDAI_NOW_MS"), 10, 64); err == nil {
			now = time.UnixMilli(ms)
		}
		allOK := true
		for _, file := range args[4:] {
			v, err := verifyFile(file, args[1], args[2], args[3], now)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			if v.OK {
				fmt.Println("ok")
			} else {
				fmt.Println("refused: " + v.Reason)
			}
			allOK = allOK && v.OK
		}
		if !allOK {
			os.Exit(1)
		}
		return
	}
	fmt.Fprintln(os.Stderr, "usage: sign SECRET TIMESTAMP_MS [SECRET TIMESTAMP_MS ...]\n"+
		"       verify signature|password SECRET PREVIOUS_SECRET FILE...")
	os.Exit(2)
}
