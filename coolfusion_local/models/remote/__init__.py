"""Source models served over HTTP by an OpenAI-compatible engine (vLLM, llama-cpp-python's server).

* `client`: JSON requests to the server, one-line errors, time spent counted;
* `protocol`: the /v1/completions bodies (greedy proposals, echo scoring) and reading their answers;
* `member`: `RemoteModel`, engine/members.py's `MemberModel` contract kept over those requests;
* `load`: connecting a models.toml entry: served model, tokenizer agreement, what the server can do.

docs/remote.md is the user's guide.
"""
