package main

// Encryption vectors: memberlist's encrypted packet and stream layouts,
// rebuilt here on crypto/aes and crypto/cipher because memberlist's own
// functions are unexported. Layout (memberlist security.go, net.go):
//
//	payload = [version][nonce 12][AES-GCM ciphertext][tag 16]
//	version 0 pads the plaintext PKCS#7 to 16 bytes, version 1 does not
//	packet additional data = label bytes
//	stream frame = [10][len u32 BE][payload], additional data = [10][len] ++ label

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// cryptVector is one encrypted message, or a request to decrypt one.
type cryptVector struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"` // "packet" or "stream"
	Version int    `json:"version"`
	Key     string `json:"key"`   // hex
	Label   string `json:"label"` // additional data (packet) or stream label
	Nonce   string `json:"nonce,omitempty"`
	Plain   string `json:"plain"` // hex
	Hex     string `json:"hex"`   // the encrypted bytes
}

func gcmFor(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealPayload writes [version][nonce][ciphertext+tag] for msg.
func sealPayload(version int, key, nonce, msg, ad []byte) ([]byte, error) {
	g, err := gcmFor(key)
	if err != nil {
		return nil, err
	}
	src := append([]byte(nil), msg...)
	if version == 0 {
		n := 16 - len(src)%16
		for i := 0; i < n; i++ {
			src = append(src, byte(n))
		}
	}
	out := append([]byte{byte(version)}, nonce...)
	return g.Seal(out, nonce, src, ad), nil
}

// openPayload reverses sealPayload, removing version 0 padding.
func openPayload(key, payload, ad []byte) ([]byte, error) {
	if len(payload) < 1+12+16 {
		return nil, fmt.Errorf("payload of %d bytes is too short", len(payload))
	}
	version := payload[0]
	if version > 1 {
		return nil, fmt.Errorf("unsupported encryption version %d", version)
	}
	g, err := gcmFor(key)
	if err != nil {
		return nil, err
	}
	plain, err := g.Open(nil, payload[1:13], payload[13:], ad)
	if err != nil {
		return nil, err
	}
	if version == 0 {
		if len(plain) == 0 {
			return nil, errors.New("version 0 plaintext is empty")
		}
		n := int(plain[len(plain)-1])
		if n == 0 || n > 16 || n > len(plain) {
			return nil, fmt.Errorf("bad padding %d", n)
		}
		plain = plain[:len(plain)-n]
	}
	return plain, nil
}

func sealStream(version int, key, nonce, msg []byte, label string) ([]byte, error) {
	encLen := 1 + 12 + len(msg) + 16
	if version == 0 {
		encLen += 16 - len(msg)%16
	}
	header := make([]byte, 5)
	header[0] = tEncrypt
	binary.BigEndian.PutUint32(header[1:], uint32(encLen))
	payload, err := sealPayload(version, key, nonce, msg, append(append([]byte(nil), header...), label...))
	if err != nil {
		return nil, err
	}
	return append(header, payload...), nil
}

func openStream(key, frame []byte, label string) ([]byte, error) {
	if len(frame) < 5 || frame[0] != tEncrypt {
		return nil, errors.New("not an encrypted stream frame")
	}
	n := binary.BigEndian.Uint32(frame[1:5])
	if int(n) != len(frame)-5 {
		return nil, fmt.Errorf("frame declares %d bytes, has %d", n, len(frame)-5)
	}
	return openPayload(key, frame[5:], append(append([]byte(nil), frame[:5]...), label...))
}

// derived makes deterministic bytes for a case from its name.
func derived(name, what string, n int) []byte {
	var out []byte
	for i := 0; len(out) < n; i++ {
		s := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%d", name, what, i)))
		out = append(out, s[:]...)
	}
	return out[:n]
}

func cryptCases() []cryptVector {
	pingMsg := encodeMsg(tPing, &ping{SeqNo: 42, Node: "n1"})
	user := streamUser([]byte("hello over an encrypted stream"))
	var out []cryptVector
	for _, version := range []int{0, 1} {
		for _, keyLen := range []int{16, 24, 32} {
			for _, label := range []string{"", "ns/default"} {
				for _, kind := range []string{"packet", "stream"} {
					msg := pingMsg
					if kind == "stream" {
						msg = user
					}
					name := fmt.Sprintf("%s-v%d-aes%d-label%t", kind, version, keyLen*8, label != "")
					out = append(out, cryptVector{
						Name: name, Kind: kind, Version: version, Label: label,
						Key:   hex.EncodeToString(derived(name, "key", keyLen)),
						Nonce: hex.EncodeToString(derived(name, "nonce", 12)),
						Plain: hex.EncodeToString(msg),
					})
				}
			}
		}
	}
	// A compound of several messages, and an empty message, as edge cases.
	big := compound(pingMsg, pingMsg, encodeMsg(tPing, &ping{SeqNo: 7, Node: "n2"}))
	out = append(out,
		cryptVector{Name: "packet-v1-compound", Kind: "packet", Version: 1, Plain: hex.EncodeToString(big)},
		cryptVector{Name: "packet-v0-block-aligned", Kind: "packet", Version: 0, Plain: hex.EncodeToString(make([]byte, 32))},
	)
	for i := len(out) - 2; i < len(out); i++ {
		out[i].Key = hex.EncodeToString(derived(out[i].Name, "key", 32))
		out[i].Nonce = hex.EncodeToString(derived(out[i].Name, "nonce", 12))
	}
	for i := range out {
		v := &out[i]
		key, _ := hex.DecodeString(v.Key)
		nonce, _ := hex.DecodeString(v.Nonce)
		plain, _ := hex.DecodeString(v.Plain)
		var enc []byte
		var err error
		if v.Kind == "packet" {
			enc, err = sealPayload(v.Version, key, nonce, plain, []byte(v.Label))
		} else {
			enc, err = sealStream(v.Version, key, nonce, plain, v.Label)
		}
		must(err)
		v.Hex = hex.EncodeToString(enc)
	}
	return out
}

// cryptMain runs "encrypt" (print cryptCases) or "decrypt" (read vectors on
// stdin, open each with its key and label, print {name, plain}).
func cryptMain(mode string) {
	switch mode {
	case "encrypt":
		must(indented(os.Stdout).Encode(cryptCases()))
	case "decrypt":
		var in []cryptVector
		must(json.NewDecoder(os.Stdin).Decode(&in))
		type result struct {
			Name  string `json:"name"`
			Plain string `json:"plain,omitempty"`
			Error string `json:"error,omitempty"`
		}
		var out []result
		for _, v := range in {
			key, err1 := hex.DecodeString(v.Key)
			enc, err2 := hex.DecodeString(v.Hex)
			if err := errors.Join(err1, err2); err != nil {
				out = append(out, result{Name: v.Name, Error: err.Error()})
				continue
			}
			var plain []byte
			var err error
			if v.Kind == "packet" {
				plain, err = openPayload(key, enc, []byte(v.Label))
			} else {
				plain, err = openStream(key, enc, v.Label)
			}
			if err != nil {
				out = append(out, result{Name: v.Name, Error: err.Error()})
				continue
			}
			out = append(out, result{Name: v.Name, Plain: hex.EncodeToString(plain)})
		}
		must(json.NewEncoder(os.Stdout).Encode(out))
	}
}
