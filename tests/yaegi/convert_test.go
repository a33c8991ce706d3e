package yaegi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// convertProbe is added to a private copy of the plugin: it hands the Responses ⇄ Anthropic
// converters (package plugin/convert) to the test as plain functions, so that they run
// interpreted exactly as in Traefik. The stream probe renders its result the way the
// package's golden files (plugin/convert/testdata/stream) hold it.
const convertProbe = `package convert

import "strings"

// ConvertAgentProbe is test scaffolding written by tests/yaegi/convert_test.go; not plugin code.
func ConvertAgentProbe(body []byte, model string) ([]byte, string, string) {
	req, ok := decodeFields(body)
	if !ok {
		return nil, "", "body does not decode"
	}
	out, tools, err := convertAgentRequest(&req, model, 0, true)
	if err != nil {
		return nil, "", err.Error()
	}
	return out, strings.Join(tools.warnings, "|"), ""
}

// ConvertAgentStreamProbe is test scaffolding written by tests/yaegi/convert_test.go; not plugin code.
func ConvertAgentStreamProbe(input []byte, chunk int, specs []string) []byte {
	s := newResponsesStream("gpt-5", "resp_X", 1)
	s.tools = newConvTools()
	for _, spec := range specs {
		f := strings.SplitN(spec, "\x00", 3)
		kind := toolFunction
		if f[0] == "1" {
			kind = toolCustom
		}
		s.tools.add(kind, f[1], f[2])
	}
	for len(input) > 0 {
		k := len(input)
		if chunk > 0 && chunk < k {
			k = chunk
		}
		s.feed(input[:k])
		input = input[k:]
	}
	s.finish()
	return s.responseJSON()
}

// ConvertRequestProbe is test scaffolding written by tests/yaegi/convert_test.go; not plugin code.
func ConvertRequestProbe(body []byte, model string) ([]byte, string) {
	out, err := responsesToMessages(body, model)
	if err != nil {
		return nil, err.Error()
	}
	return out, ""
}

// ConvertStreamProbe is test scaffolding written by tests/yaegi/convert_test.go; not plugin code.
func ConvertStreamProbe(input []byte, chunk int, started *bool) []byte {
	s := newResponsesStream("gpt-5-codex", "resp_0123456789abcdef01234567", 1700000000)
	var out []byte
	for len(input) > 0 {
		k := len(input)
		if chunk > 0 && chunk < k {
			k = chunk
		}
		out = append(out, s.feed(input[:k])...)
		input = input[k:]
	}
	out = append(out, s.finish()...)
	*started = s.started()
	out = append(out, "# response.json\n"...)
	out = append(out, s.responseJSON()...)
	out = append(out, "\n# anthropic usage\n"...)
	if u := s.anthropicUsage(); u != nil {
		out = append(out, u...)
	} else {
		out = append(out, "null"...)
	}
	return append(out, '\n')
}
`

type convertFuncs struct {
	request     func([]byte, string) ([]byte, string)
	stream      func([]byte, int, *bool) []byte
	agent       func([]byte, string) ([]byte, string, string)
	agentStream func([]byte, int, []string) []byte
}

var (
	convertOnce sync.Once
	convertFns  convertFuncs
	convertErr  error
)

// loadConvertProbe interprets a copy of the plugin with the probe file added, once.
func loadConvertProbe(t testing.TB) convertFuncs {
	t.Helper()
	convertOnce.Do(func() {
		convertFns, convertErr = interpretConvertProbe()
	})
	if convertErr != nil {
		t.Fatal(convertErr)
	}
	return convertFns
}

func interpretConvertProbe() (convertFuncs, error) {
	var fns convertFuncs
	dir, err := os.MkdirTemp("", "poolgate-yaegi-convert-")
	if err != nil {
		return fns, err
	}
	// The interpreter reads the sources at import; the copy is not needed afterwards.
	defer os.RemoveAll(dir)
	vs, err := interpretWithProbeIn(dir, "plugin/convert", "zz_convertprobe.go", convertProbe,
		"ConvertRequestProbe", "ConvertStreamProbe", "ConvertAgentProbe", "ConvertAgentStreamProbe")
	if err != nil {
		return fns, err
	}
	req, st, ag, ags := vs[0], vs[1], vs[2], vs[3]
	var ok1, ok2, ok3, ok4 bool
	fns.request, ok1 = req.Interface().(func([]byte, string) ([]byte, string))
	fns.stream, ok2 = st.Interface().(func([]byte, int, *bool) []byte)
	fns.agent, ok3 = ag.Interface().(func([]byte, string) ([]byte, string, string))
	fns.agentStream, ok4 = ags.Interface().(func([]byte, int, []string) []byte)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return fns, fmt.Errorf("probe functions have unexpected types %s, %s, %s, %s", req.Type(), st.Type(), ag.Type(), ags.Type())
	}
	return fns, nil
}

// Interpreted, the stream converter produces exactly the golden output the native tests
// check, whatever the read sizes.
func TestConvertStreamUnderYaegi(t *testing.T) {
	fns := loadConvertProbe(t)
	dir := filepath.Join(repoRoot, "plugin", "convert", "testdata", "stream")
	inputs, err := filepath.Glob(filepath.Join(dir, "*.anthropic.sse"))
	if err != nil || len(inputs) < 6 {
		t.Fatalf("golden inputs: %v, %v", inputs, err)
	}
	for _, in := range inputs {
		name := filepath.Base(in[:len(in)-len(".anthropic.sse")])
		t.Run(name, func(t *testing.T) {
			input, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(dir, name+".responses.golden"))
			if err != nil {
				t.Fatal(err)
			}
			for _, chunk := range []int{0, 5, 100} {
				var started bool
				got := fns.stream(input, chunk, &started)
				if !bytes.Equal(got, want) {
					t.Fatalf("chunk %d: interpreted output differs from the golden file:\n%s", chunk, got)
				}
				if !started {
					t.Errorf("chunk %d: started() false", chunk)
				}
			}
		})
	}
}

// Interpreted, the request converter produces exactly what it produces natively for every
// case of the plugin's conversion tables (plugin/convert/testdata/requests.golden.json,
// written and checked by the native tests), errors included.
func TestConvertRequestUnderYaegi(t *testing.T) {
	fns := loadConvertProbe(t)
	raw, err := os.ReadFile(filepath.Join(repoRoot, "plugin", "convert", "testdata", "requests.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name   string `json:"name"`
		Model  string `json:"model"`
		Body   string `json:"body"`
		Output string `json:"output"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(raw, &cases); err != nil || len(cases) < 40 {
		t.Fatalf("%d cases: %v", len(cases), err)
	}
	for _, c := range cases {
		out, errMsg := fns.request([]byte(c.Body), c.Model)
		if string(out) != c.Output || errMsg != c.Error {
			t.Errorf("%s: interpreted\n%s %s\nnative\n%s %s", c.Name, out, errMsg, c.Output, c.Error)
		}
	}
}

// BenchmarkConvertStreamUnderYaegi reports interpreted converted events per second: a
// 1000-delta text stream fed in 32 KB reads, as in Traefik.
func BenchmarkConvertStreamUnderYaegi(b *testing.B) {
	fns := loadConvertProbe(b)
	var in bytes.Buffer
	in.WriteString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":100,\"output_tokens\":1}}}\n\n")
	in.WriteString("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	for i := 0; i < 1000; i++ {
		in.WriteString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a few words \\\"here\\\" \"}}\n\n")
	}
	in.WriteString("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
	in.WriteString("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":500}}\n\n")
	in.WriteString("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	input := in.Bytes()
	events := bytes.Count(input, []byte("\n\n"))
	var started bool
	b.SetBytes(int64(len(input)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out := fns.stream(input, 32<<10, &started); !bytes.Contains(out, []byte("response.completed")) {
			b.Fatal("not completed")
		}
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
