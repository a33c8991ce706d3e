package convert

// Content parts of Responses messages and function_call_outputs → Anthropic content blocks:
// text, images (base64 data URIs and URLs), PDF documents, tool inputs and results.

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// decodeParts returns a message's content as parts: a string is one text part.
func decodeParts(raw json.RawMessage, at string) ([]responsesPart, error) {
	if jsonsse.IsNull(raw) {
		return nil, nil
	}
	if s, ok := jsonsse.String(raw); ok {
		return []responsesPart{{Type: "input_text", Text: s}}, nil
	}
	var parts []responsesPart
	if raw[0] != '[' || json.Unmarshal(raw, &parts) != nil {
		return nil, errors.New(at + ".content must be a string or an array of content parts")
	}
	return parts, nil
}

func systemText(raw json.RawMessage, at string) (string, error) {
	parts, err := decodeParts(raw, at)
	if err != nil {
		return "", err
	}
	var texts []string
	for j := 0; j < len(parts); j++ {
		p := parts[j]
		switch p.Type {
		case "input_text", "text", "output_text":
			if strings.TrimSpace(p.Text) != "" {
				texts = append(texts, p.Text)
			}
		default:
			return "", errors.New(at + ".content[" + strconv.Itoa(j) + "]: a system message takes text only")
		}
	}
	return strings.Join(texts, "\n\n"), nil
}

// contentBlocks converts the parts of a user message (text, images, files) or of an
// assistant message (text, refusals). Blank text is left out: Anthropic refuses it.
func contentBlocks(raw json.RawMessage, assistant bool, at string) ([]messagesBlock, error) {
	parts, err := decodeParts(raw, at)
	if err != nil {
		return nil, err
	}
	var blocks []messagesBlock
	for j := 0; j < len(parts); j++ {
		p := parts[j]
		pat := at + ".content[" + strconv.Itoa(j) + "]"
		text := ""
		switch {
		case p.Type == "input_text" || p.Type == "text" || p.Type == "output_text":
			text = p.Text
		case p.Type == "refusal" && assistant:
			text = p.Refusal
		case p.Type == "input_image" && !assistant:
			src, err := imageSource(p, pat)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, messagesBlock{Type: blockImage, Source: src})
			continue
		case p.Type == "input_file" && !assistant:
			src, err := fileSource(p, pat)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, messagesBlock{Type: blockDocument, Source: src})
			continue
		default:
			return nil, errors.New(pat + ": content type " + quoteForError(p.Type) + " is not supported here")
		}
		if strings.TrimSpace(text) != "" {
			blocks = append(blocks, messagesBlock{Type: blockText, Text: text})
		}
	}
	return blocks, nil
}

// imageSource takes a base64 data URI or an http(s) URL; file ids name files stored at
// OpenAI, which Anthropic cannot read.
func imageSource(p responsesPart, at string) (*messagesSource, error) {
	u, ok := jsonsse.String(p.ImageURL)
	if !ok && len(p.ImageURL) > 0 && p.ImageURL[0] == '{' {
		var h urlHolder
		if json.Unmarshal(p.ImageURL, &h) == nil {
			u, ok = h.URL, true
		}
	}
	if !ok || u == "" {
		return nil, errors.New(at + ": input_image needs image_url (a data URI or an http(s) URL)")
	}
	return urlSource(u, at)
}

// fileSource takes a base64 PDF data URI or an http(s) URL.
func fileSource(p responsesPart, at string) (*messagesSource, error) {
	u := p.FileData
	if u == "" {
		u = p.FileURL
	}
	if u == "" {
		return nil, errors.New(at + ": input_file needs file_data (a base64 PDF data URI) or file_url")
	}
	if !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		// Responses' file_data may be bare base64.
		u = "data:application/pdf;base64," + u
	}
	src, err := urlSource(u, at)
	if err != nil {
		return nil, err
	}
	if src.Type == "base64" && src.MediaType != "application/pdf" {
		return nil, errors.New(at + ": input_file supports PDF documents only")
	}
	return src, nil
}

func urlSource(u, at string) (*messagesSource, error) {
	if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
		return &messagesSource{Type: "url", URL: u}, nil
	}
	const b64 = ";base64,"
	if strings.HasPrefix(u, "data:") {
		if i := strings.Index(u, b64); i > len("data:") {
			return &messagesSource{Type: "base64", MediaType: u[len("data:"):i], Data: u[i+len(b64):]}, nil
		}
	}
	return nil, errors.New(at + ": only base64 data URIs and http(s) URLs are supported")
}

// toolInput turns function_call arguments (a JSON string holding an object) into a
// tool_use input. Arguments that are not an object, as a call cut by max_tokens leaves
// them, become {} rather than failing the whole history.
func toolInput(raw json.RawMessage) json.RawMessage {
	if len(raw) > 0 && raw[0] == '{' {
		return raw
	}
	s, ok := jsonsse.String(raw)
	s = strings.TrimSpace(s)
	if !ok || !strings.HasPrefix(s, "{") || !json.Valid([]byte(s)) {
		return emptyToolInput
	}
	return json.RawMessage(s)
}

// toolResultContent converts a function_call_output's output: a string stays a string, an
// array of parts becomes blocks; empty output leaves content out (it is optional).
func toolResultContent(raw json.RawMessage, at string) (json.RawMessage, error) {
	if jsonsse.IsNull(raw) {
		return nil, nil
	}
	switch raw[0] {
	case '"':
		s, _ := jsonsse.String(raw)
		if strings.TrimSpace(s) == "" {
			return nil, nil
		}
		return raw, nil
	case '[':
		blocks, err := contentBlocks(raw, false, at+".output")
		if err != nil || len(blocks) == 0 {
			return nil, err
		}
		return jsonsse.Encode(blocks)
	}
	// Any other JSON value is handed to the model as its text.
	return jsonsse.Encode(string(raw))
}
