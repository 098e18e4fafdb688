"""Test-object builders for every tier (unit, end to end, cluster, bench): one module per kind or concern.

- `manifest`: objects as spec-file JSON, `set_field` / `drop_field` for variants;
- `agentrun`, `budget`, `routes`, `adapters`: each kind as spec-file JSON and as the parsed API model;
- `defaults`: the moment and namespace of the standard scenario; `policy`: its policy input;
- `spec_files`: YAML text as a person writes it; `invalid_cases`: one broken object per rule;
- `chat`: adapter requests, replies and configs; `doubles`: scripted adapters and a controllable clock;
- `cluster`: an in-memory API server and an operator context over it.

Defaults are sensible and valid; a test changes what it needs by keyword.
"""
