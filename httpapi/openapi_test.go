package httpapi

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestOpenAPI holds openapi.json to the route table: the same operations,
// each documenting its errors as problem responses.
func TestOpenAPI(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3") {
		t.Fatalf("openapi %q, want 3.x", v)
	}
	checkRefs(t, doc, doc, "#")

	paths, _ := doc["paths"].(map[string]any)
	documented := map[string]map[string]any{}
	for path, item := range paths {
		for method, op := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = op.(map[string]any)
		}
	}
	routed := map[string]route{}
	for _, rt := range routes {
		routed[rt.method+" "+rt.path] = rt
	}
	for k := range routed {
		if _, ok := documented[k]; !ok {
			t.Errorf("route %s is not in openapi.json", k)
		}
	}
	for k := range documented {
		if _, ok := routed[k]; !ok {
			t.Errorf("openapi.json documents %s, which is not routed", k)
		}
	}

	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	for k, rt := range routed {
		op := documented[k]
		if op == nil {
			continue
		}
		item := paths[rt.path].(map[string]any)
		responses, _ := op["responses"].(map[string]any)
		has := func(status int) bool { _, ok := responses[strconv.Itoa(status)]; return ok }

		sec, overridden := op["security"]
		if rt.auth {
			if overridden {
				t.Errorf("%s needs a token but overrides security with %v", k, sec)
			}
			if !has(401) {
				t.Errorf("%s needs a token but does not document 401", k)
			}
		} else if s, _ := sec.([]any); !overridden || len(s) != 0 {
			t.Errorf("%s needs no token; document security: []", k)
		}
		if !has(500) {
			t.Errorf("%s does not document 500", k)
		}
		if strings.Contains(rt.path, "{") && !has(404) {
			t.Errorf("%s has path parameters but does not document 404", k)
		}
		if body, ok := op["requestBody"].(map[string]any); ok {
			for _, s := range []int{400, 413, 415} {
				if !has(s) {
					t.Errorf("%s takes a body but does not document %d", k, s)
				}
			}
			content, _ := resolve(doc, body)["content"].(map[string]any)
			if len(content) == 0 {
				t.Errorf("%s documents no request media type", k)
			}
			for mt := range content {
				if !slices.Contains(bodyMediaTypes, mt) {
					t.Errorf("%s takes %s, which the handlers do not read", k, mt)
				}
			}
			if rt.method == "PATCH" {
				if _, ok := content["application/merge-patch+json"]; !ok {
					t.Errorf("%s does not take application/merge-patch+json", k)
				}
			}
		} else if rt.method == "POST" || rt.method == "PATCH" {
			t.Errorf("%s documents no request body", k)
		}
		// Path parameters are declared, at the path or the operation.
		declared := map[string]bool{}
		for _, list := range []any{item["parameters"], op["parameters"]} {
			ps, _ := list.([]any)
			for _, p := range ps {
				pm := resolve(doc, p.(map[string]any))
				if pm["in"] == "path" {
					declared[pm["name"].(string)] = true
				}
			}
		}
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter %q is not declared", k, m[1])
			}
		}
		var success bool
		for status, r := range responses {
			resp := resolve(doc, r.(map[string]any))
			content, _ := resp["content"].(map[string]any)
			if strings.HasPrefix(status, "2") {
				success = true
				if status != "204" && len(content) == 0 {
					t.Errorf("%s %s documents no content", k, status)
				}
				for mt := range content {
					if !slices.Contains(responseMediaTypes, mt) {
						t.Errorf("%s %s answers %s, which the handlers do not write", k, status, mt)
					}
				}
				continue
			}
			pj, _ := content["application/problem+json"].(map[string]any)
			if ref, _ := pj["schema"].(map[string]any)["$ref"].(string); ref != "#/components/schemas/Problem" {
				t.Errorf("%s %s is not a Problem response", k, status)
			}
		}
		if !success {
			t.Errorf("%s documents no success response", k)
		}
	}

	// The Problem schema lists exactly the codes the status table maps.
	enum := doc["components"].(map[string]any)["schemas"].(map[string]any)["Problem"].(map[string]any)["properties"].(map[string]any)["code"].(map[string]any)["enum"].([]any)
	var codes, mapped []string
	for _, c := range enum {
		codes = append(codes, c.(string))
	}
	for c := range statusOf {
		mapped = append(mapped, c)
	}
	slices.Sort(codes)
	slices.Sort(mapped)
	if !slices.Equal(codes, mapped) {
		t.Errorf("Problem.code enum %q, want the mapped codes %q", codes, mapped)
	}
}

// The media types the handlers read and write. Most of the API is JSON;
// the certificate authority also speaks the formats PKI tools expect.
var (
	bodyMediaTypes     = []string{mediaJSON, mediaMergePatch, mediaOCSPRequest, mediaCSV, mediaNDJSON}
	responseMediaTypes = []string{mediaJSON, mediaPEMChain, mediaCRL, mediaPEMFile, mediaOCSPResponse, "text/event-stream", mediaCSV, mediaNDJSON}
)

// resolve follows a local $ref.
func resolve(doc, v map[string]any) map[string]any {
	for range 10 {
		ref, ok := v["$ref"].(string)
		if !ok {
			return v
		}
		v = lookup(doc, ref)
		if v == nil {
			return map[string]any{}
		}
	}
	return v
}

func lookup(doc map[string]any, ref string) map[string]any {
	cur := doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		next, ok := cur[part].(map[string]any)
		if !ok {
			return nil
		}
		cur = next
	}
	return cur
}

// checkRefs fails for any $ref that does not resolve.
func checkRefs(t *testing.T, doc map[string]any, v any, at string) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok && lookup(doc, ref) == nil {
			t.Errorf("%s: $ref %q does not resolve", at, ref)
		}
		for k, c := range v {
			checkRefs(t, doc, c, at+"/"+k)
		}
	case []any:
		for i, c := range v {
			checkRefs(t, doc, c, at+"/"+strconv.Itoa(i))
		}
	}
}
