package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// The official OpenAI Go SDK is one of the clients: what it accepts is the contract.

func sdkClient(key string) *openai.Client {
	c := openai.NewClient(
		option.WithBaseURL(gw.GatewayURL+"/v1/"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
	)
	return &c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSDKResponsesNonStream(t *testing.T) {
	cred := unique("sk-up")
	programCredential(t, cred, obj{"text": "Bonjour from upstream.", "usage": obj{"input_tokens": 40, "cached_tokens": 15, "output_tokens": 7}})
	tn, accts := newTenant(t, accountSpec{Credential: cred})
	c := sdkClient(tn.Key)

	resp, err := c.Responses.New(ctxT(t), responses.ResponseNewParams{
		Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello")},
	})
	if err != nil {
		t.Fatalf("Responses.New: %v", err)
	}
	if got := resp.OutputText(); got != "Bonjour from upstream." {
		t.Errorf("output text = %q", got)
	}
	if resp.Usage.InputTokens != 40 || resp.Usage.InputTokensDetails.CachedTokens != 15 || resp.Usage.OutputTokens != 7 {
		t.Errorf("usage seen by the client = %+v", resp.Usage)
	}

	// The upstream saw the account's credential, never the client's key.
	reqs := upstreamRequestsFor(t, cred)
	if len(reqs) != 1 || reqs[0].Path != "/v1/responses" {
		t.Fatalf("upstream requests with the account credential = %+v", reqs)
	}
	for k, v := range reqs[0].Headers {
		for _, s := range v {
			if strings.Contains(s, tn.Key) {
				t.Errorf("client key leaked upstream in header %s", k)
			}
		}
	}

	rec := usageFor(t, tn.KeyID, 1)[0]
	// OpenAI counts cached tokens inside input_tokens; the record keeps them apart.
	if num(rec, "input_tokens") != 25 || num(rec, "cache_read_tokens") != 15 || num(rec, "output_tokens") != 7 {
		t.Errorf("usage record tokens = %v", rec)
	}
	if num(rec, "status") != 200 || num(rec, "attempts") != 1 || num(rec, "account_id") != accts[0] {
		t.Errorf("usage record = %v", rec)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestSDKResponsesStream(t *testing.T) {
	cred := unique("sk-up")
	programCredential(t, cred, obj{"text": "one two three four", "chunk_delay_ms": 5, "usage": obj{"input_tokens": 30, "cached_tokens": 0, "output_tokens": 4}})
	tn, accts := newTenant(t, accountSpec{Credential: cred})
	c := sdkClient(tn.Key)

	stream := c.Responses.NewStreaming(ctxT(t), responses.ResponseNewParams{
		Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Count")},
	})
	var text string
	var completed bool
	var usage responses.ResponseUsage
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "response.output_text.delta":
			text += ev.Delta
		case "response.completed":
			completed = true
			usage = ev.Response.Usage
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if !completed || text != "one two three four" {
		t.Fatalf("completed=%v text=%q", completed, text)
	}
	if usage.InputTokens != 30 || usage.OutputTokens != 4 {
		t.Errorf("streamed usage = %+v", usage)
	}
	rec := usageFor(t, tn.KeyID, 1)[0]
	if num(rec, "input_tokens") != 30 || num(rec, "output_tokens") != 4 || num(rec, "status") != 200 {
		t.Errorf("usage record = %v", rec)
	}
	if num(rec, "first_token_ms") <= 0 || num(rec, "duration_ms") < num(rec, "first_token_ms") {
		t.Errorf("latencies in the record = first %d, total %d", num(rec, "first_token_ms"), num(rec, "duration_ms"))
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestSDKChatCompletions(t *testing.T) {
	cred := unique("sk-up")
	programCredential(t, cred, obj{"text": "chat answer", "usage": obj{"input_tokens": 20, "cached_tokens": 8, "output_tokens": 2}})
	tn, accts := newTenant(t, accountSpec{Credential: cred})
	c := sdkClient(tn.Key)
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}

	t.Run("non-stream", func(t *testing.T) {
		cc, err := c.Chat.Completions.New(ctxT(t), params)
		if err != nil {
			t.Fatalf("Chat.Completions.New: %v", err)
		}
		if len(cc.Choices) != 1 || cc.Choices[0].Message.Content != "chat answer" {
			t.Fatalf("choices = %+v", cc.Choices)
		}
		if cc.Usage.PromptTokens != 20 || cc.Usage.CompletionTokens != 2 {
			t.Errorf("usage = %+v", cc.Usage)
		}
	})
	t.Run("stream", func(t *testing.T) {
		// The client does not ask for usage; the gateway still bills it.
		stream := c.Chat.Completions.NewStreaming(ctxT(t), params)
		acc := openai.ChatCompletionAccumulator{}
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != "chat answer" {
			t.Fatalf("accumulated choices = %+v", acc.Choices)
		}
	})
	recs := usageFor(t, tn.KeyID, 2)
	for _, rec := range recs {
		if num(rec, "input_tokens") != 12 || num(rec, "cache_read_tokens") != 8 || num(rec, "output_tokens") != 2 {
			t.Errorf("usage record = %v", rec)
		}
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
