package server

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"

	"gopkg.in/yaml.v3"
)

// OpenAPIYAML is the API description, kept next to the handlers it
// describes.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

// openapiAsJSON converts the embedded YAML once, at start-up.
func openapiAsJSON() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(OpenAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("server: openapi.yaml: %w", err)
	}
	b, err := json.Marshal(jsonable(doc))
	if err != nil {
		return nil, fmt.Errorf("server: openapi.yaml: %w", err)
	}
	return b, nil
}

// jsonable turns YAML's maps with non-string keys (an unquoted response
// code such as 200 is an integer in YAML) into JSON objects.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
		return v
	}
	return v
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.openapiJSON)
	return nil
}
