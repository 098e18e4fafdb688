// Command argocd-health runs Argo CD resource health checks (health.lua) the way Argo CD does: the
// object as the Lua global `obj`, in gopher-lua (the interpreter Argo CD embeds), the script's
// returned table read as {status, message}.
//
//	argocd-health test DIR      every <group>/<Kind>/health_test.yaml under DIR; one JSON line per case
//	argocd-health eval SCRIPT   the health of the object (JSON or YAML) on standard input, as JSON
//	argocd-health snippet DIR   the argocd-cm data entries (resource.customizations.health.<group>_<Kind>)
//
// The layout is Argo CD's own for resource customizations: health.lua, health_test.yaml
// ({tests: [{healthStatus: {status, message}, inputPath}]}) and testdata/.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type testCase struct {
	HealthStatus healthStatus `json:"healthStatus"`
	InputPath    string       `json:"inputPath"`
}

type testFile struct {
	Tests []testCase `json:"tests"`
}

type outcome struct {
	Check string       `json:"check"`
	Input string       `json:"input"`
	Want  healthStatus `json:"want"`
	Got   healthStatus `json:"got"`
	Error string       `json:"error,omitempty"`
	Pass  bool         `json:"pass"`
}

// toLua turns decoded JSON into Lua values, as Argo CD hands objects to its scripts.
func toLua(state *lua.LState, value interface{}) lua.LValue {
	switch typed := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(typed)
	case float64:
		return lua.LNumber(typed)
	case string:
		return lua.LString(typed)
	case []interface{}:
		table := state.NewTable()
		for _, item := range typed {
			table.Append(toLua(state, item))
		}
		return table
	case map[string]interface{}:
		table := state.NewTable()
		for key, item := range typed {
			table.RawSetString(key, toLua(state, item))
		}
		return table
	}
	return lua.LNil
}

// evaluate runs script on obj and reads the table it returns.
func evaluate(script string, obj map[string]interface{}) (healthStatus, error) {
	state := lua.NewState()
	defer state.Close()
	state.SetGlobal("obj", toLua(state, obj))
	if err := state.DoString(script); err != nil {
		return healthStatus{}, err
	}
	table, ok := state.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("the script returned %s, not a table", state.Get(-1).Type())
	}
	status, _ := table.RawGetString("status").(lua.LString)
	message, _ := table.RawGetString("message").(lua.LString)
	return healthStatus{Status: string(status), Message: string(message)}, nil
}

func readObject(data []byte) (map[string]interface{}, error) {
	var obj map[string]interface{}
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, fmt.Errorf("no object")
	}
	return obj, nil
}

func checks(root string) ([]string, error) {
	found, err := filepath.Glob(filepath.Join(root, "*", "*", "health.lua"))
	sort.Strings(found)
	return found, err
}

func runTests(root string) int {
	scripts, err := checks(root)
	if err != nil || len(scripts) == 0 {
		fmt.Fprintf(os.Stderr, "no health.lua under %s/<group>/<Kind>/ (%v)\n", root, err)
		return 2
	}
	failed := 0
	encoder := json.NewEncoder(os.Stdout)
	for _, scriptPath := range scripts {
		dir := filepath.Dir(scriptPath)
		check, _ := filepath.Rel(root, dir)
		script, err := os.ReadFile(scriptPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		var tests testFile
		data, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err == nil {
			err = yaml.UnmarshalStrict(data, &tests)
		}
		if err != nil || len(tests.Tests) == 0 {
			fmt.Fprintf(os.Stderr, "%s: health_test.yaml has no tests (%v)\n", check, err)
			return 2
		}
		for _, test := range tests.Tests {
			result := outcome{Check: check, Input: test.InputPath, Want: test.HealthStatus}
			input, err := os.ReadFile(filepath.Join(dir, test.InputPath))
			var obj map[string]interface{}
			if err == nil {
				obj, err = readObject(input)
			}
			if err == nil {
				result.Got, err = evaluate(string(script), obj)
			}
			if err != nil {
				result.Error = err.Error()
			}
			result.Pass = err == nil && result.Got == result.Want
			if !result.Pass {
				failed++
			}
			_ = encoder.Encode(result)
		}
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func runEval(scriptPath string) int {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	input, err := io.ReadAll(os.Stdin)
	var obj map[string]interface{}
	if err == nil {
		obj, err = readObject(input)
	}
	var health healthStatus
	if err == nil {
		health, err = evaluate(string(script), obj)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = json.NewEncoder(os.Stdout).Encode(health)
	return 0
}

func runSnippet(root string) int {
	scripts, err := checks(root)
	if err != nil || len(scripts) == 0 {
		fmt.Fprintf(os.Stderr, "no health.lua under %s/<group>/<Kind>/ (%v)\n", root, err)
		return 2
	}
	data := map[string]string{}
	for _, scriptPath := range scripts {
		kind := filepath.Base(filepath.Dir(scriptPath))
		group := filepath.Base(filepath.Dir(filepath.Dir(scriptPath)))
		script, err := os.ReadFile(scriptPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		data[fmt.Sprintf("resource.customizations.health.%s_%s", group, kind)] = string(script)
	}
	out, err := yaml.Marshal(map[string]interface{}{"data": data})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	_, _ = os.Stdout.Write(out)
	return 0
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health test DIR | eval SCRIPT | snippet DIR")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "test":
		os.Exit(runTests(os.Args[2]))
	case "eval":
		os.Exit(runEval(os.Args[2]))
	case "snippet":
		os.Exit(runSnippet(os.Args[2]))
	}
	fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
	os.Exit(2)
}
