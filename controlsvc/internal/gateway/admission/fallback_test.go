package admission

import (
	"reflect"
	"testing"
)

import ()

func TestFallbackRules(t *testing.T) {
	t.Parallel()
	rules, err := compileFallbacks(1, `{"mini": {"context_length_exceeded": ["big", "huge"], "exhausted": ["other"]},
		"*": {"model_not_found": ["default"]}}`)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name            string
		list            func(fallbackLists) []string
		requested       string
		current         string
		want            []string
		contextFallback bool
	}{
		{name: "context length from the requested model", list: cle, requested: "mini", current: "mini",
			want: []string{"big", "huge"}, contextFallback: true},
		{name: "context length from the first fallback", list: cle, requested: "mini", current: "big",
			want: []string{"huge"}, contextFallback: true},
		{name: "context length list used up", list: cle, requested: "mini", current: "huge", want: nil},
		{name: "served by another list counts from the start", list: cle, requested: "mini", current: "other",
			want: []string{"big", "huge"}, contextFallback: true},
		{name: "exhausted", list: func(l fallbackLists) []string { return l.exhausted }, requested: "mini", current: "mini",
			want: []string{"other"}, contextFallback: true},
		{name: "an exact entry hides *", list: func(l fallbackLists) []string { return l.notFound }, requested: "mini",
			current: "mini", want: nil, contextFallback: true},
		{name: "* for any other model", list: func(l fallbackLists) []string { return l.notFound }, requested: "gpt-x",
			current: "gpt-x", want: []string{"default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := after(tt.list(rules.lists(tt.requested)), tt.current, tt.requested); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("after = %v, want %v", got, tt.want)
			}
			if got := rules.contextFallback(tt.requested, tt.current); got != tt.contextFallback {
				t.Fatalf("contextFallback = %v, want %v", got, tt.contextFallback)
			}
		})
	}
	// A list naming the requested model does not loop back to it.
	if got := after([]string{"a", "mini", "b"}, "mini", "mini"); !reflect.DeepEqual(got, []string{"b"}) {
		t.Fatalf("after with the requested model in the list = %v, want [b]", got)
	}
	if !rules.knows("mini", "huge") || rules.knows("mini", "default") || !rules.knows("gpt-x", "default") {
		t.Fatal("knows disagrees with the lists")
	}
	if empty, err := compileFallbacks(1, ""); err != nil || empty.contextFallback("m", "m") {
		t.Fatalf("no fallbacks: %v %v", empty, err)
	}
	if _, err := compileFallbacks(1, `[1]`); err == nil {
		t.Fatal("an unreadable model_fallbacks compiled")
	}
}

func cle(l fallbackLists) []string { return l.contextLength }
