"""Reliability and security: what a real user's machine throws at coolfusion, and what they see.

Every row names the test that fails if the handling is removed. Tests elsewhere are named with
their module; `(here)` means this module. Tests marked `models` load real GGUF models through
llama.cpp: run them under `flock /tmp/coolfusion-models.lock`.

| case | what the user sees | test |
|---|---|---|
| **config** | | |
| empty / comments-only models.toml | `coolfusion: FILE: the file is empty ...; add at least one [[models]] entry`, exit 2 | test_config.py::test_a_bad_config_is_one_line_and_exit_code_2[empty,only-comments] |
| malformed TOML | `... not valid TOML: ... at line 3, column 8`, exit 2 | test_config.py::...[malformed,unclosed-string] |
| unknown keys | `... unknown key 'quantt' (did you mean 'quant'?)`, exit 2 | test_config.py::...[unknown-model-key,unknown-fusion-key,unknown-top-key] |
| wrong types | `... n_ctx must be a whole number, not a string ('4096')`, exit 2 | test_config.py::...[n_ctx-string,n_ctx-bool,gpu-layers-float,enabled-string,weight-string,...] |
| duplicate names | `... two models are named 'qwen'`, exit 2 | test_config.py::...[duplicate-names] |
| zero enabled models | `... no model is enabled; set enabled = true ...`, exit 2 | test_config.py::...[none-enabled] |
| one model only | the answer, and `note: only smollm2-135m is loaded: it answers alone` on stderr, exit 0 | (here) test_one_model_only_answers_alone_and_says_so |
| one of two models fails to load | `warning: model 'broken': ...` (one line), `note: only ... answers alone`, the answer, exit 0 | (here) test_a_model_that_fails_to_load_leaves_the_other_to_answer |
| path does not exist | `... path '.../nowhere/m.gguf' does not exist; fix the path ...`, exit 2 | test_config.py::...[path-missing] |
| path is a directory | `... is a folder; point it at the .gguf file inside`, exit 2 | test_config.py::...[path-is-folder], ::test_a_config_folder_is_one_line |
| no read permission (config / model) | `... no permission to read it; fix its permissions (chmod u+r)`, exit 2 | test_config.py::test_an_unreadable_config_is_one_line, ::test_an_unreadable_model_file_is_one_line, ::test_an_unreadable_model_file_for_real |
| config not UTF-8 | `... not UTF-8 text (byte N); save it as UTF-8`, exit 2 | test_config.py::...[not-utf8] |
| `models init` when the user config exists | `coolfusion: PATH already exists; edit it, or move it away to write a fresh copy`, exit 1; the file is untouched | test_install.py::test_models_init_writes_a_commented_copy_then_refuses_to_overwrite |
| `models add` a bad source (repo name, missing or non-GGUF file, unknown repo/file/quant, unreachable URL, duplicate name) | one line naming the source and the fix, exit 2; no config written or changed | test_models_edit.py::test_add_refuses_a_bad_hub_source_in_one_line_and_writes_nothing, ::test_add_refuses_a_bad_local_file, ::test_add_an_unreachable_url_or_one_without_tokenizer_is_one_line, ::test_add_a_pypi_carried_model_and_a_duplicate |
| `models add`, `remove`, `enable`, `disable`, `lead` on a file that does not parse | `PATH: not valid TOML (...); fix it by hand (or move it away) before editing it`, exit 2; file untouched, no backup | test_models_edit.py::test_a_file_that_does_not_parse_is_never_edited |
| an edit that would leave the config invalid (last enabled model off, solo mode's model removed) | `PATH: refused, the file would then be invalid: ...`, exit 2; file untouched | test_models_edit.py::test_bad_edits_are_one_line_exit_2_and_change_nothing, ::test_removing_the_model_of_a_solo_mode_is_refused |
| installed as a wheel (pipx, uv tool, a venv), run from any folder | the default models.toml shipped in the package is used | test_install.py::test_the_installed_tool_lists_the_default_models_from_any_folder |
| the install tests on a fresh machine, run from a venv whose base Python has none of the dependencies (issue 29.1: the tool died of `No module named 'platformdirs'`) | the wheel's venv reads the test Python's own site folders through a .pth file, not the base interpreter's (`--system-site-packages`); checked from a venv of Debian's bare /usr/bin/python3.11 | test_install.py::test_the_installed_package_is_the_wheel_not_the_checkout, ::test_the_installed_tool_lists_the_default_models_from_any_folder, ::test_the_installed_tool_inits_the_user_config_and_reads_it |
| **model files** (each: one `ModelLoadFailed` line from `FusionEngine.load()`, `NAME: FAILED: <line>` from `models check` (exit 1), `warning: <line>` then `coolfusion: no model is loaded (...)` from `generate` (exit 1); never a traceback, never a crash: no broken file made llama.cpp abort) | | (here) test_a_broken_model_file_is_one_failed_load[*], test_a_broken_model_file_says_why[*], test_broken_model_files_through_the_cli |
| empty file | `model 'x': FILE is empty, not a GGUF file; download or assemble it again` | [empty-file] |
| not GGUF / an HTML page saved as .gguf | `... is not a GGUF file (it starts with b'<!DO' (an HTML page: the download went wrong)); point the config at a .gguf model file` | [not-gguf], [html-page] |
| truncated GGUF (header cut / weights cut) | `... is truncated: its tensors end at byte 98,362,432 but the file has 49,181,216; download or assemble it again` | [truncated-header], [truncated-weights] |
| unsupported GGUF version | `... is GGUF version 7; only versions 2 and 3 are supported, re-convert it with a current llama.cpp` | [bad-version] |
| metadata without weights | `model 'x': cannot load FILE: key not found in model: llama.embedding_length` | [no-weights] |
| an architecture llama.cpp cannot load | `model 'x': cannot load FILE: unknown model architecture: 'llamx'` | [unknown-architecture] |
| unknown tokenizer | `... uses the tokenizer 'gpx2', which llama.cpp does not know; convert it again or update llama-cpp-python` | [unknown-tokenizer] |
| missing tokenizer / tokens | `... has no tokenizer (tokenizer.ggml.model is missing)` / `... has a tokenizer without tokens (tokenizer.ggml.tokens is missing); convert it again with its tokenizer files` | [missing-tokenizer], [missing-tokens] |
| unknown pre-tokenizer | `model 'x': cannot load FILE: unknown pre-tokenizer type: 'smollx'` | [unknown-pre-tokenizer] |
| a tensor missing | `model 'x': cannot load FILE: tensor 'output_norm.weight' not found` | [missing-tensor] |
| llama.cpp's real reason, not its last log line (`failed to load model`) | `engine/llama_log.load_failure_reason` picks the cause from llama.cpp's log | (here) test_load_failure_reason_picks_llama_cpp_s_explanation[*] |
| the header checks, before llama.cpp sees the file | `preflight.check_gguf_for_llama` names the missing or unknown piece | (here) test_preflight_names_what_is_wrong_with_the_file[*], test_preflight_accepts_the_real_offline_models |
| model too big for memory (checked from file size, KV cache and buffers against MemAvailable / the cgroup limit, before loading) | `warning: model 'huge' (huge.gguf) needs about 216.2 GB of memory (214.7 GB of weights + 1.4 GB for a 4,096-token context and buffers) but only 24.5 GB is free; close other programs, lower n_ctx in models.toml, or pick a smaller model or quant (set COOLFUSION_SKIP_MEMORY_CHECK=1 to try anyway)` | (here) test_a_model_too_big_for_memory_is_refused_before_loading, test_the_memory_estimate_is_refused_and_accepted_at_the_edge, test_a_container_memory_limit_is_respected, test_a_model_too_big_for_memory_through_the_cli |
| GPU layers asked for on a CPU-only llama.cpp build | the model runs on the CPU and `note: model 'x': n_gpu_layers asks for 99 layers on the GPU, but this llama.cpp build has no GPU support, so it runs on the CPU; reinstall llama-cpp-python with CMAKE_ARGS=...` | (here) test_gpu_layers_on_a_cpu_build_fall_back_with_a_notice, test_gpu_layers_on_a_cpu_build_still_load |
| the first answer on a GPU device with no kept exact batch size (llama.cpp's Vulkan backend died of SIGSEGV in the measurement's batched decode, 3 runs in 5) | the measurement runs in a child process loaded like the model; if it crashes, drafting checks one token per decode and the log says why (killed from outside, e.g. by the OOM killer: size 1 for this run only, measured again next start); the answer goes on | test_device_probe_child.py::test_a_crashing_child_leaves_this_process_with_the_safe_size, ::test_a_child_killed_from_outside_is_not_kept_as_a_crash, test_gpu.py::test_the_first_answer_measures_its_exact_batch_in_a_child_and_survives (`-m gpu`) |
| `bench --decode-costs` with layers on a GPU device (on lavapipe, Mesa 22.3, the timing's batched decodes died of SIGSEGV in the driver's worker thread, every run) | each model with GPU layers is timed in a child process loaded like it; one that dies is named under the table, `NAME: not measured: llama.cpp crashed (SIGSEGV) timing NAME's decodes on DEVICE in a test process (this command goes on; see docs/models.md#gpu-offload)`, the other models are measured, exit 1 | test_device_probe_child.py::test_a_crash_timing_decodes_names_itself_and_the_other_models_are_measured, test_gpu.py::test_bench_decode_costs_on_the_device (`-m gpu`) |
| members that do not all fit in the GPU's memory | fitted before loading: the lead's layers first, the rest as they fit, the rest of each on the CPU; one line `GPU fit on DEVICE (BUDGET): NAME 25/25 layers, 0.61 GiB; ...` (and what to set when not even the lead fits); `COOLFUSION_GPU_MEMORY` caps the budget | test_device_fit.py::test_the_estimate_from_real_gguf_headers, test_gpu.py::test_members_fit_a_budget_smaller_than_they_need (`-m gpu`) |
| a `.partial` left by a kill, an OOM or quitting during assembly (0.5-1.1 GB) | removed on the next start and before the free-space check; kept while its assembly still holds the lock | test_hub.py::test_a_leftover_partial_is_removed_before_the_free_space_check, ::test_an_assembly_killed_half_way_is_cleaned_up_on_the_next_start, ::test_a_partial_being_written_by_another_process_is_left_alone |
| verification stamp cannot be written (read-only / full cache) | the model loads; once: `note: cannot record verified models in DIR (...): they are used, but hashed again on every start` | test_hub.py::test_a_stamp_that_cannot_be_written_never_fails_a_good_model, (here) test_a_stamp_that_cannot_be_written_still_loads_the_model |
| a file-system error (full disk, read-only or missing folder, a file where a folder should be) | one line `coolfusion: Not a directory: PATH`, exit 1 (`models check`: `NAME: FAILED: ...`; chat: one notification), never a traceback | test_models_command.py::test_a_file_system_error_is_one_line_never_a_traceback, test_tui_chat.py::test_a_file_system_error_in_an_engine_job_is_one_line_not_an_internal_error |
| **this machine's CPU** (test_cpu_extra_buffers.py) | | |
| a CPU whose AMX kernels fault at the first decode (llama.cpp #20824; simulated: the probe child dies by SIGSEGV) | the answer, with `note: llama.cpp's extra CPU buffer types are off: llama.cpp's AMX kernels crash on this CPU (llama.cpp #20824; the probe died of SIGSEGV); running without them`; exit 0; the verdict is kept per llama.cpp build and CPU | test_cpu_extra_buffers.py::test_generate_answers_on_a_cpu_whose_amx_kernels_crash, ::test_a_crashing_probe_turns_them_off_once_and_is_remembered, ::test_a_new_llama_cpp_build_or_cpu_is_probed_again |
| llama.cpp crashing on this machine even without the extra buffer types (seen: a libstdc++ clash in the tokenizer's regex) | no model is loaded in the user's process: `llama.cpp crashed (SIGSEGV) loading and running FILE in a test process, with and without its extra CPU buffer types, so no model is loaded here; reinstall llama-cpp-python ...` | test_cpu_extra_buffers.py::test_llama_cpp_crashing_even_without_them_loads_nothing_in_process |
| `cpu_extra_buffers` in models.toml / `COOLFUSION_CPU_EXTRA_BUFFERS` wrong | `...: [runtime]: cpu_extra_buffers must be "auto", true or false, not 'sometimes'`, exit 2 | test_cpu_extra_buffers.py::test_a_bad_runtime_setting_is_one_config_line, ::test_the_config_and_then_the_variable_override_the_probe |
| the AMX probe's child killed from outside (SIGKILL from the OOM killer, SIGTERM), exiting 3 (cannot load), or the second child failing any way but a crash (issue 29.3: was kept for good as "AMX crashes") | off for this run only, tested again at the next start: `the AMX probe could not run (killed by SIGKILL); running without llama.cpp's extra buffer types this time` | test_amx_probe_verdicts.py::test_what_says_nothing_of_the_kernels_is_not_kept_as_an_amx_crash[*], ::test_a_sigkill_of_the_first_child_is_told_as_such, ::test_a_real_child_killed_by_sigkill_is_not_an_amx_crash |
| what counts as an AMX crash | only SIGSEGV, SIGILL, SIGBUS or SIGABRT of the first child, and only when the second (without them) prints "ok"; kept per llama.cpp build and CPU | test_amx_probe_verdicts.py::test_a_crash_signal_with_a_control_that_passes_is_an_amx_crash_kept_for_good[*] |
| the probe hangs (120 s) (issue 29.2: was not kept, so every start waited again) | off, kept for a day: `the AMX probe did not finish in 120 s; running without llama.cpp's extra buffer types, and probing again after DATE`; a control child that hangs is kept the same way, never as a crash | test_amx_probe_verdicts.py::test_a_probe_that_times_out_is_kept_for_a_day_then_tried_again, ::test_a_control_that_times_out_is_kept_as_a_timeout_not_as_a_crash |
| a big model listed first (issue 29.2: the probe loaded it on the CPU) | the probe loads the smallest local model (checked first, as its load would) | test_amx_probe_verdicts.py::test_the_probe_loads_the_smallest_local_model_and_says_so_first, test_cpu_extra_buffers.py::test_the_engine_reports_the_choice_with_every_local_model_and_notes_it_once |
| the probe's wait (issue 29.2: silence) | a line before it: `note: testing llama.cpp's AMX kernels on this CPU with FILE in a separate process first (once per llama.cpp build and CPU; it gives up after 120 s)` from the CLI; the chat's status bar and a notification | test_cpu_extra_buffers.py::test_generate_answers_on_a_cpu_whose_amx_kernels_crash, test_tui_load_wait.py::test_the_status_bar_says_what_a_load_waits_for_until_loading_goes_on |
| every layer of every local model on a GPU (issue 29.2, issue 28 part 3) | no probe; the extra CPU buffer types off (nothing runs on the CPU's kernels); a CPU-only build, or a layer left on the CPU (the output layer too), is probed | test_amx_probe_verdicts.py::test_the_probe_is_skipped_where_every_layer_is_on_a_gpu[*], ::test_a_cpu_only_build_is_probed_whatever_n_gpu_layers_says |
| macOS, or a CPU that is not x86-64 (issue 29.8: every Mac was probed and stored "this CPU has AMX") | on, no probe: `macOS has no Intel AMX, so llama.cpp's AMX kernels are never used` / `this CPU is aarch64, not x86-64, ...` | test_amx_probe_verdicts.py::test_no_mac_and_no_cpu_but_x86_64_is_probed[*] |
| Windows: the probe child dies of an exception (0xC0000005, 0xC000001D, ..., unsigned or as a signed 32-bit number) (issue 29.8: read as "could not run" and probed at every start) | a crash, as SIGSEGV is on Linux: kept as "AMX kernels crash", or `llama.cpp crashed` where the second child dies too | test_amx_probe_verdicts.py::test_a_windows_exception_code_is_a_crash[*], ::test_windows_where_both_children_crash_loads_nothing, ::test_a_windows_x86_64_cpu_whose_kernels_pass_is_kept_on |
| two installs on one host (pipx and a venv, a CPU and a GPU build) (issue 29.9: one record, each probe overwrote the other's) | one verdict per llama.cpp build and CPU in one file (the 16 most recent); neither probes again | test_amx_probe_verdicts.py::test_two_llama_cpp_builds_on_one_host_keep_their_own_verdicts, test_cpu_extra_buffers.py::test_a_new_llama_cpp_build_or_cpu_is_probed_again |
| a damaged runtime cache file: cut, not JSON, not UTF-8, binary, over 1 MB, nested 100,000 deep (issue 29.9: RecursionError, every model load failed) | read as empty: probed or measured again and rewritten atomically | test_amx_probe_verdicts.py::test_a_damaged_verdict_file_is_probed_again_and_rewritten[*], ::test_a_damaged_exact_batch_file_is_measured_again[*] |
| a kept exact batch size the probe cannot give (40, 0, true, "4") (issue 29.9: a 40 made drafting check 40 tokens per decode, not exact) | measured again (1 to 8 only) | test_amx_probe_verdicts.py::test_a_kept_exact_batch_size_outside_what_the_probe_measures_is_measured_again[*], test_exact_batch_cache.py::test_a_kept_size_larger_than_the_probe_measures_is_measured_again |
| the remote tests' llama-cpp-python server on such a CPU | started through `tests/llama_server_launcher.py`, which applies the same decision to every model the server loads | test_cpu_extra_buffers.py::test_the_test_server_launcher_applies_the_decision |
| **generation** | | |
| prompt longer than a context | oldest turns left out with `note: ... the N oldest messages were left out`; a single message too long: `context_full` and `shorten it or raise n_ctx` | test_fusion.py::test_long_conversation_is_trimmed_with_a_notice, ::test_a_message_too_long_for_any_context_is_refused_cleanly |
| context fills mid-answer | the partial answer kept, `note: a model's context is full: the answer was cut short`, stop_reason `context_full`, exit 0 | (here) test_the_context_filling_mid_answer_keeps_the_partial_text |
| a model returns EOS at once | an empty answer, stop_reason `eos`, exit 0 | (here) test_a_model_that_ends_at_once_gives_an_empty_answer, test_fusion.py::test_model_that_ends_at_once |
| models never agree on a boundary (50 digits of pi, a long URL) | segments forced after at most 16 tokens: `decisions["forced"]` counted, the text stays whole and every model holds it | (here) test_no_common_boundary_is_cut_after_a_bound[digits,url], test_fusion.py::test_forced_boundary_when_no_word_ends_within_the_bound |
| an answer starting on a SentencePiece vocabulary with a space prefix (Llama 2, Mistral, Phi-3) | the first segment is taken in like any other (was: `cannot tokenise the answer so it reads back the same`; fixed in source_model.py) | (here) test_a_sentencepiece_answer_can_start_with_a_segment[*] |
| UTF-8 split across tokens, CJK, emoji, code, long lines | valid UTF-8 on stdout; no U+FFFD in any segment but a cut last one; every model holds the same text | (here) test_multilingual_code_and_long_lines_stay_valid_text, test_fusion.py::test_cjk_emoji_and_code_answers_stay_valid_text, test_boundary.py::test_utf8_split_across_tokens_waits_for_the_whole_character |
| Ctrl-C mid-answer in `coolfusion generate` | the partial answer stays on stdout, `coolfusion: interrupted` (one line) on stderr, exit 130, no traceback | (here) test_ctrl_c_keeps_the_partial_answer_and_exits_130 |
| a stop string spanning two segments (`... Final` + ` answer:`) | nothing of the stop string is shown, streamed, saved or graded: text that could still start a stop string is held back until the next segment shows it cannot (cool, adaptive, solo, Cool+R) | test_stop_strings.py::test_a_stop_string_across_a_segment_join_never_shows[*], ::test_cool_r_answers_hold_no_stop_text |
| Cool+R: a model's own answer is empty, failed, or was cut by a full context or the loop guard | left out of the rerank with `note: Cool+R leaves out answers that are empty, failed or cut short: smollm2-135m (loop); ...`; an empty answer (perplexity 1) never wins over a written one; none left: the fused answer | test_rerank_choice.py::test_only_complete_non_empty_answers_compete, ::test_an_empty_answer_never_wins_over_a_written_one, ::test_a_solo_answer_the_loop_guard_cut_is_left_out |
| Cool+R chooses a model's own answer | that answer's own stop reason (one that ended at a stop string says `stop_string`, was `max_tokens`) and token count (API `usage.completion_tokens`); seconds and tok/s over the whole Cool+R run | test_rerank_choice.py::test_the_chosen_answer_reports_its_own_stop_reason_and_tokens |
| text that repeats by design: a numbered list of identical lines, a zero matrix as rows, `1, 1, 1, ...`, `1 0 1 0 ...`, 4-space indented code, CSV rows | the loop guard leaves it alone (it stopped each of them); a verbatim prose loop, a cycle of list items, one bulleted item over and over and looping verse are still stopped | test_repetition.py::test_legitimate_repetition_never_trips_the_guard[*], ::test_real_loops_in_lists_and_verse_are_still_caught[*], ::test_a_loop_inside_one_list_item_or_after_numbers_is_still_caught |
| API: an answer the loop guard ended | `finish_reason: "length"` and `coolfusion.stop_reason: "loop"` (was `stop`, so a client took the cut answer for a complete one), whole and streamed | test_serve.py::test_an_answer_the_loop_guard_ended_says_length_and_stop_reason_loop, test_serve_requests.py::test_finish_reasons_and_chunk_shapes |
| Cool+R's final rerank fails (a context too small to score a long answer, a tokenising error) | `note: the final rerank failed, so the fused answer is kept: ...` and the fused answer; eval's Cool+R from parts keeps the fused record | test_rerank_errors.py::test_any_rerank_error_keeps_the_fused_answer |
| a flag (🇺🇸), ZWJ emoji, keycap, tag sequence or a letter with marks at a segment boundary | never cut in half: boundaries fall between visible characters only | test_boundary.py::test_no_boundary_inside_a_visible_character[*], ::test_a_flag_is_never_cut_in_half[*] |
| a real U+FFFD in the model's output; a character cut by a full context (under 4 tokens of room) | the U+FFFD is a 3-byte character like any other; a split character is held back until whole and never left as U+FFFD in the answer | test_boundary.py::test_a_real_replacement_character_is_a_whole_character, test_stop_strings.py::test_a_character_split_across_segments_is_shown_whole_or_not_at_all |
| a served member (llama-cpp-python's server) writes a character as several byte tokens (rare emoji, 龘), which the server returns as `""` | the answer goes on, the same text as the local model's (it ended with an error before) | test_remote_text.py::test_characters_split_over_tokens_come_back_from_a_served_member |
| a model's own `temperature = 0` in a sampled answer, served | the repeat penalty applies, as for a local member (it was dropped); what each server penalises is in docs/remote.md | test_remote_text.py::test_a_models_own_temperature_0_keeps_the_repeat_penalty_when_served |
| Ctrl-C while a model loads (`coolfusion generate` and every command that loads on its main thread) | the load is cancelled by llama.cpp's progress callback, `coolfusion: interrupted`, exit 130; no `Exception ignored` traceback, no made-up load failure | test_load_interrupt.py::test_ctrl_c_inside_a_load_stops_it_and_raises_keyboard_interrupt, ::test_ctrl_c_while_generate_loads_models_exits_130 |
| Esc mid-answer in the chat | the answer stops, the partial text is kept and saved as `stopped` | test_tui_chat.py::test_escape_stops_the_answer_and_keeps_the_partial, test_tui_views.py::test_escape_in_compare_stops_the_solo_answers_then_closes |
| an answer stopped before its first word, then another question (Gemma 3 / Mistral templates: roles must alternate) | the empty answer is saved but not sent; the two questions reach the model as one user turn; every later question is answered | test_chat_turns.py::test_a_strict_template_takes_the_chat_after_an_empty_answer[*], ::test_a_strict_template_takes_two_questions_in_a_row_from_any_caller[*], ::test_a_real_model_with_gemma_3_s_template_answers_after_a_stopped_empty_answer |
| `max_tokens` smaller than a segment (`--max-tokens 1`, `max_tokens: 1`; a segment is up to 16 proposer tokens, e.g. 16 digits of pi) | at most that many of the lead's answer tokens in every mode and interface (generate, chat, eval, API): the last segment is cut after a whole token and a whole character (an emoji in byte tokens is left out whole, the answer may be empty); every model holds the cut text and the conversation goes on from it (was: a word or 16 digits, `completion_tokens` > `max_tokens`) | test_answer_limit.py::test_max_tokens_caps_the_lead_s_answer_tokens[*], ::test_a_limit_of_one_token_gives_one_token_not_a_word, ::test_the_cut_never_splits_a_character[*], ::test_a_cut_answer_can_be_continued_by_every_model, test_serve.py::test_max_tokens_is_a_cap_whole_and_streamed |
| greedy answers with drafting on (the default `[fusion] draft = "auto"`: the cheaper model drafts, the others check in batches) | the same answer token for token as with `draft = "off"`, in cool and adaptive mode; every model still holds the shared text; `generate --json` stats carry `draft` (drafter, accepted/offered, acceptance) and `lead_decodes`; `generate`'s summary line and the chat's status line and answer footer show `drafts N% accepted` | test_drafting.py::test_greedy_answers_are_the_same_token_for_token_with_drafting[*], ::test_drafting_reads_the_lead_fewer_times_and_reports_it, ::test_the_chat_shows_the_draft_acceptance_of_an_answer_that_drafted |
| a draft the model does not agree with (wrong from its first token, or partway) | nothing decoded when wrong from the first token; otherwise the rejected tail's KV cells are rolled back and the model goes on with its own greedy tokens | test_drafting.py::test_a_wrong_draft_is_rolled_back_and_costs_nothing_when_wrong_from_its_first_token |
| sampling (temperature > 0) with drafting on | no drafting (accepting sampled tokens would need the speculative-sampling rule): the sampled distribution is unchanged | test_drafting.py::test_sampling_never_drafts |
| `draft = "sometimes"`, `draft_max_segments = 0` in models.toml | `... draft 'sometimes' is not a drafting mode ...; use one of auto, batch, off`, exit 2 | test_drafting.py::test_a_bad_draft_key_is_one_line_and_exit_2[*] |
| a sampling lead (chat, `generate`) that draws a token other than its likeliest where its raw top-1 led by more than `sure_margin` | the lead counts as unsure there (judged by the drawn token in the distribution it drew from): a partner proposing the lead's own likeliest token is scored, and adaptive asks the partners (was: blocked as "sure", the partners never asked) | test_sampled_guard.py::test_the_margin_is_the_drawn_tokens_in_the_distribution_drawn_from, ::test_a_lead_that_drew_against_its_argmax_lets_the_partner_propose_that_argmax |
| three or more models, the best-scored candidate vetoed by the lead | the best candidate the lead lets through wins (was: the lead's own, though another passed the veto) | test_scoring.py::test_a_vetoed_best_candidate_falls_back_to_the_best_one_the_lead_lets_through |
| numbers that are not ASCII digits (`３`/`４`, `٣`/`٤`, `三`/`四`, `½`/`¼`, `²`/`³`, `-2`/`−2`); a parting right after a number (`is 42` then a line break vs ` pears`) | the guard keeps the lead's number (the parting point moved to a character boundary, characters tested with Unicode's numeric values); text after a number is not a number parting (was: ASCII bytes only, and anything after a digit) | test_guard.py::test_parts_in_number_knows_every_unicode_number[*], ::test_parting_after_a_number_is_not_a_number_parting[*], ::test_the_parting_point_is_a_character_boundary |
| a draft check whose decode fails part way (the KV cache full) | the error as before, and the earlier batches' cells rolled back: the model decodes on (was: "inconsistent sequence positions" at every later decode until reloaded) | test_draft_bounds.py::test_a_draft_check_that_fails_in_a_later_chunk_leaves_no_cells_behind |
| drafting near the end of a context; `draft_max_segments = 1000` | a draft stops at the room left less the answer's 64-token reserve; models.toml: `... draft_max_segments = 1000 is too large; use 16 or less ...`, exit 2 (was: accepted, and a long draft ended the answer `context_full` early) | test_draft_bounds.py::test_a_draft_stops_at_the_room_left_in_the_drafters_context, ::test_draft_max_segments_has_a_stated_maximum |
| **security** | | |
| special-token strings typed by the user | plain text for every family (Qwen, SmolLM2, Gemma 3, Llama 2/3, Phi-3, Gemma 4, Command-R, GPT-2): no control token, no new turn or role | (here) test_typed_special_tokens_stay_plain_text[*], test_source_model.py::test_user_text_never_becomes_special_tokens |
| special-token strings inside a model's answer | plain text for every other model: cannot end the turn | (here) test_special_token_text_in_an_answer_cannot_end_the_turn[*] |
| special-token strings typed by the user, with a served member (llama-cpp-python's server parses special tokens in text prompts) | plain text for that member too: the server reads exactly the template's special tokens, none from the message | test_remote_text.py::test_message_text_spelling_special_tokens_stays_text_for_a_served_member |
| a served member's failure in `coolfusion serve` (its URL may hold credentials) | the client gets `the served model 'NAME' failed; the server's log has the details` (400/500 or a stream error chunk); the URL and upstream text go to the server log only | test_serve_upstream.py::test_a_served_member_failing_before_any_text_names_the_member_only, ::test_a_served_member_failing_mid_answer_names_the_member_only_whole_and_streamed |
| `GET /health` without the API key (when one is set) | `{"status": "ok"}` only: no model names or states | test_serve_upstream.py::test_health_without_the_key_says_only_up |
| Textual markup in user, model or file text (`[/b]` in a question crashed the compare view; `[@click=app.quit]x` in a chat title became a button) | shown as typed in every widget, dialog, table, title, notification and palette entry; nothing clickable; links in answers open only for http(s) | test_tui_markup.py::test_hostile_text_everywhere_is_shown_as_typed_and_never_acts, ::test_a_question_with_a_closing_tag_opens_the_compare_view, ::test_only_web_links_open_from_an_answer, ::test_every_widget_gets_its_text_through_plain_text |
| hostile chat template (sandbox escapes) | `TemplateError`: `the chat template tried something unsafe and was stopped: ...`; nothing runs | (here) test_a_hostile_template_never_runs[*] |
| hostile template as `chat_template` in models.toml | one line `coolfusion: the chat template tried something unsafe ...`, exit 1, nothing runs | (here) test_a_hostile_template_in_models_toml_is_refused_in_one_line |
| hostile template inside a GGUF | the model loads with the plain format, the reason is shown (`(plain (the chat template tried something unsafe ...) template)`), nothing runs | (here) test_a_hostile_template_inside_a_gguf_falls_back_to_plain |
| memory-bomb template (`{{ 'A' * 10**8 }}`, `{{ 7 ** 10**8 }}`, huge loops) | refused in one line: the sandbox bounds `*` and `**` and the rendered size and time | (here) test_a_template_cannot_blow_up_the_prompt |
| hostile-template corpus (29: left-associative `9**64**64**64**64**64`, `'%999999999s' % ''`, `center`/`ljust`/`zfill`/`format` widths, a `join` of `[s]*k`, `replace('', s)`, `indent`, `batch`, `slice`, `lipsum`, `to_bytes`, doubling by recursion or namespace, loops that call nothing, ...) | `the chat template tried something unsafe and was stopped: a power of about 12,992 bits (limit 4,096)` (or `took too long to render` / `used too much memory`), in under 5 s; the app's memory does not move: every value is bounded inside the sandbox and the template renders in a worker process with a memory limit that is killed past its time (was: hangs, or GBs allocated) | test_template_sandbox.py::test_a_hostile_template_fails_in_one_line_within_bounds[*], ::test_the_renderer_comes_back_after_it_was_killed |
| real models' templates in the bounded renderer | rendered exactly as plain Jinja renders them (Qwen2, Qwen2.5-Coder, SmolLM2, Gemma 4, Command-R, Phi-3) | test_template_sandbox.py::test_real_templates_render_exactly_as_plain_jinja |
| no network unless a download was asked for | no socket connection or DNS lookup from `models list`, `models info`, `models check`, `generate` | (here) test_listing_never_touches_the_network, test_generate_never_touches_the_network, test_hub_downloads.py::test_nothing_touches_the_network_unless_a_download_is_asked_for, test_models_command.py::test_list_and_info_never_touch_the_network |
| downloaded files checked against the Hub's size / sha256 | `... does not match the Hub's listing (sha256 ...); removed it, run coolfusion models pull NAME` | test_hub_downloads.py::test_a_download_that_does_not_match_the_listing_is_removed, ::test_a_cached_file_damaged_later_is_caught, ::test_a_download_that_is_not_gguf_is_removed, test_hub.py::test_damaged_parts_are_refused_and_leave_nothing_behind |
| a web page in the user's browser POSTs to the local server (`text/plain`, its own Origin, a rebound Host) | **415** unless `Content-Type: application/json`; **403** `host_not_allowed` for a Host that is not an address, `localhost`, `--host` or `--allow-host NAME`; **403** `origin_not_allowed` for another site's Origin unless `--cors ORIGIN`; an allowed page's preflight passes with the openai JS SDK's `x-stainless-*` headers, without a key (was: 200 with an answer) | test_serve_guards.py::test_a_text_plain_post_from_a_foreign_page_is_refused, ::test_a_post_body_must_say_json[*], ::test_other_host_names_are_refused[*], ::test_hosts_this_server_is_reached_by_pass[*], ::test_a_foreign_origin_is_refused_unless_cors_allows_it, ::test_the_openai_js_sdk_preflight_passes_for_an_allowed_origin_without_a_key, test_serve.py::test_a_web_page_cannot_use_the_server |
| API fields the engine cannot honour (`logprobs`, `top_logprobs`, `tools`, `tool_choice`, `functions`, `function_call`, JSON `response_format`, `n` > 1) | 400 `unsupported_parameter` naming the field in `param`; the same fields at their neutral value are answered (was: 200, silently ignored) | test_serve_requests.py::test_a_field_the_engine_cannot_honour_is_refused_by_name[*], ::test_fields_at_their_neutral_value_are_accepted, test_serve_guards.py::test_fields_that_would_change_the_answer_get_a_400_naming_them[*], test_serve.py::test_the_openai_client_gets_a_400_naming_a_field_that_is_not_honoured[*], ::test_the_openai_client_with_those_fields_at_their_neutral_values_is_answered |
| sampling values past what llama.cpp takes (`repeat_penalty: 1e400` = inf, `top_k: 4294967297`, a seed past uint32) from the API, a flag or models.toml | one check (`Sampling.invalid_setting`): API 400 `invalid_value` naming the field; flags and models.toml one line, exit 2 (was: inf sent on as `Infinity`, top_k wrapped to 1) | test_serve_requests.py::test_sampling_values_out_of_range_are_refused_by_name[*], test_serve_guards.py::test_sampling_values_past_what_llama_cpp_takes_get_a_400[*], test_sampling_config.py::test_a_bad_sampling_key_is_one_line_and_exit_2[top-k-past-int32], ::test_a_bad_sampling_flag_is_one_line_and_exit_2[*], test_serve.py::test_the_openai_client_gets_a_400_for_sampling_values_llama_cpp_cannot_take |
| **API (`coolfusion serve`)** | | |
| an answer that fails before its first text after notices (only one model loaded, old turns left out): a prompt too long, a template that refuses the conversation | 400 `context_length_exceeded` / `generation_failed` with the engine's one-line reason, whole or streamed: a stream holds its first chunk until the first text, so the error comes before it opens (was: 200, empty, `length`; or 500) | test_serve_answer_ends.py::test_a_failure_before_any_text_is_an_error_response_after_any_notices[*], test_serve.py::test_a_failure_before_any_text_is_a_400_when_one_model_answers_alone |
| Ctrl-C / SIGTERM while an answer is being written | a whole answer: 503 `shutting_down`; a stream that began: an error chunk (`shutting_down`) and `[DONE]`, no finish chunk, so the `openai` client raises; a stream not begun: 503; exit 0 (was: 200 with the partial text and `finish_reason: "stop"`) | test_serve_answer_ends.py::test_a_whole_answer_cut_by_a_shutdown_is_a_503[*], ::test_a_stream_cut_by_a_shutdown_ends_with_an_error_chunk_not_a_finish, ::test_a_stream_stopped_before_its_first_text_is_a_503_not_a_stream, test_serve.py::test_sigterm_ends_a_stream_in_flight_with_an_error_and_exits_0, ::test_sigterm_during_a_whole_answer_is_a_503_and_exits_0 |
| a conversation longer than a context | `usage.prompt_tokens` counts the prompt the lead read, without the turns left out (was: every message sent) | test_serve_answer_ends.py::test_usage_counts_the_prompt_the_engine_read[*], test_answer_limit.py::test_prompt_tokens_count_what_the_lead_read_not_the_messages_left_out |
| **dependencies** | | |
| Python 3.10 (no `tomllib`), or a dependency older than the code needs | pip refuses to install: `requires-python >= 3.11` and every floor in pyproject.toml is the oldest version the tests pass with | test_dependency_floors.py::test_every_module_imports_with_the_floors, ::test_fast_tests_pass_with_the_floors |
| a Textual release that moves the private footer widgets the key hints read (`textual.widgets._footer.FooterKey`, `key_display`) | the chat starts with Textual's plain footer; pyproject.toml bounds Textual below 9 | test_tui_key_hints_fallback.py::test_the_chat_starts_with_the_plain_footer_when_textuals_footer_key_is_gone, ::test_the_chat_starts_with_the_plain_footer_when_a_private_attribute_is_gone |
| **storage** | | |
| kill -9 while messages are being written | every message committed before the kill is there, whole, with its segments; the file passes `integrity_check` | (here) test_kill_9_while_writing_loses_no_finished_message, test_store.py::test_a_killed_process_loses_no_finished_message |
| read-only history | `Cannot write the history file (attempt to write a readonly database); this session continues in memory ...`; the chat goes on | (here) test_a_history_that_turns_read_only_keeps_the_chat_in_memory, test_a_read_only_history_file_at_start_is_kept_in_memory |
| full disk | `... continues in memory and new messages will not be saved`; what was finished is on disk | test_store.py::test_a_full_disk_switches_to_memory_and_keeps_what_was_read, test_tui_history.py::test_a_disk_that_fills_up_mid_chat_loses_nothing_on_screen |
| unwritable data folder | `History is kept in memory for this session only: ...` | test_store.py::test_an_unwritable_data_dir_keeps_history_in_memory, test_tui_history.py::test_an_unwritable_data_dir_keeps_the_chat_going_in_memory |
| corrupt database | `The history database was damaged (...); it was moved to FILE.corrupt-DATE and a new one started.` | test_store.py::test_a_corrupt_file_is_moved_aside_not_deleted, test_tui_history.py::test_a_corrupt_database_is_moved_aside_with_a_notice |
| two chat windows on one database | both processes' messages all saved, in order, file intact | (here) test_two_processes_write_one_history_at_the_same_time, test_store.py::test_two_stores_on_one_file, test_tui_history.py::test_two_app_instances_share_one_history |
| a conversation deleted in another window, then written to | `Not saved: this chat (#N) was deleted from the history, perhaps in another window...`; never re-created, never mixed into another; ids never reused (AUTOINCREMENT; v1 files migrated) | test_store.py::test_two_windows_never_mix_conversations, ::test_a_deleted_conversation_s_id_is_never_given_again, ::test_a_version_1_history_is_migrated_with_every_row_and_ids_stop_being_reused, test_tui_history.py::test_a_chat_deleted_in_another_window_is_said_and_never_mixed_into_another |
| "database is locked" for a moment | retried; the session stays on disk (a lock that never passes fails that one write, not the session) | test_store.py::test_a_transient_lock_is_waited_out_not_a_reason_to_stop_saving, ::test_a_lock_that_does_not_pass_fails_one_write_and_keeps_the_file |
| history and exports under the default umask | history 0600 in a 0700 folder (older files tightened); exports 0600, an existing file replaced only after a yes | test_store.py::test_the_history_is_private_to_its_owner, ::test_an_older_world_readable_history_is_made_private, test_tui_history.py::test_an_export_never_overwrites_without_asking_and_is_private |
| eval log with U+2028/U+2029/U+0085 in an answer, a last line cut by a crash (even inside a UTF-8 character) | resumes and summarises; the half line dropped through a temp file + rename | test_eval_command.py::test_answers_holding_unicode_line_separators_resume, ::test_a_tail_cut_inside_a_utf8_character_is_dropped_not_a_traceback, ::test_the_half_line_repair_writes_a_new_file_and_renames_it |
| `eval diff` on a missing folder, a folder without answers.jsonl, an unknown `--against` mode, `--resamples 0` | one line (`... is not a folder`, `... has no answers.jsonl: not a coolfusion eval run folder`, `--against solo:x: this run has no such mode (it has ...)`), exit 2 | test_eval_diff.py::test_diff_usage_errors_are_one_line_exit_2 |
| `eval diff --seed -1`, `--resamples 1000000000`, a results.json holding a JSON list | one line (`--seed must be between 0 and 4294967295`, `--resamples must be at most 1,000,000`, `... holds a JSON list, not an eval summary ...`), exit 2 (was: a numpy traceback, an 8 GB allocation, an AttributeError) | test_eval_diff.py::test_diff_usage_errors_are_one_line_exit_2[*] |
| an eval run whose lead is not the first listed model (`lead = true`, weight, size) | results.json and every answer record the lead; `eval diff` pairs against it and Cool+R counts its tokens (was: the first listed model); older runs fall back to the first model | test_eval_command.py::test_the_engines_lead_not_the_first_listed_model_is_recorded_and_diffed, test_eval_diff.py::test_diff_pairs_against_the_recorded_lead_and_old_runs_fall_back_to_the_first_model |
| `eval diff` on a run still writing (a half last line) or made before segments were recorded | the whole answers compared, the file untouched; differing problems say `segment decisions are not recorded in this run` | test_eval_diff.py::test_diff_leaves_a_half_written_last_line_alone, ::test_diff_counts_the_pairs_and_names_the_parting_segment |
| **load** | | |
| 100 turns in one conversation | RSS after turn 100 within 32 MB of turn 20 while the engine leaves old turns out every answer (measured, SmolLM2, n_ctx 256: 172.5 -> 172.8 MiB over 200 turns in 106 s with a 24-message client window; 172.4 -> 172.9 MiB in 301 s sending all 400 messages; the test runs 100 turns at n_ctx 128 to keep CI short, and so also decodes in contexts under llama.cpp's default batch) | (here) test_100_turns_do_not_grow_memory |
| API clients that disconnect while their request waits (12 x 1 MiB with `--max-queue 2`) | each leaves the queue at once, its messages dropped: what the server holds stays bounded by the queue (was: every one kept until the running answer ended, while `/health` said `waiting: 0`) | test_serve_guards.py::test_requests_that_leave_while_waiting_are_dropped_at_once_with_their_messages, ::test_shutdown_ends_the_running_answer_and_answers_the_waiting_ones_503 |
| SIGTERM / Ctrl-C landing while the server's event-loop thread holds the worker's lock | the handler only flags the stop; the server stops and exits 0 (was: a deadlock, the process hung) | test_serve_guards.py::test_a_signal_that_lands_while_the_worker_lock_is_held_still_stops_the_server, test_serve.py::test_sigterm_ends_the_answer_in_flight_cleanly_and_exits_0 |
| trimming a 400-message conversation | the fewest oldest exchanges are left out, found by bisection (a handful of renders per answer) | (here) test_trimming_a_long_conversation_renders_few_prompts |
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from coolfusion_local.engine import llama_log
from coolfusion_local.models import preflight
from coolfusion_local.config import Config, ModelSpec
from coolfusion_local.fusion_engine import FusionEngine, chat_format_for
from coolfusion_local.engine.events import AnswerDone, Message, ModelLoaded, ModelLoadFailed, ModelLoadStarted
from coolfusion_local.engine.fusion import prompt_tokens
from coolfusion_local.engine.members import Member
from coolfusion_local.engine.prompts import ChatFormat, TemplateError
from coolfusion_local.engine.source_model import SourceModel
from coolfusion_local.errors import CoolfusionError
from coolfusion_local.tui.store import DB_FILENAME, Store, StoredMessage
from models_env import REPO, run_coolfusion
from reliability_helpers import (
    BAD_MODEL_FILES,
    FAMILY_TEMPLATES,
    HOSTILE_USER_TEXT,
    LLAMA_CPP_LOGS,
    MEMORY_BOMB_TEMPLATE,
    SPECIAL_STRINGS,
    STORE_WRITER,
    TURNS_SCRIPT,
    embed_chat_template,
    guarded_env,
    hostile_templates,
    make_bad_model,
    run_script,
)

CLI_TIMEOUT = 300


@pytest.fixture(scope="module")
def smollm2_bytes(smollm2_path) -> bytes:
    return smollm2_path.read_bytes()


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory, smollm2_bytes) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad-models")
    return {kind: make_bad_model(kind, smollm2_bytes, folder) for kind in BAD_MODEL_FILES}


def write_config(folder: Path, models: dict[str, dict], fusion: dict | None = None) -> Path:
    """models.toml with one [[models]] table per name: {key: value} (strings quoted as TOML)."""
    lines = []
    for name, keys in models.items():
        lines += ["[[models]]", f'name = "{name}"']
        lines += [f"{key} = {json.dumps(value) if isinstance(value, str) else str(value).lower()}"
                  for key, value in keys.items()]
    if fusion:
        lines.append("[fusion]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in fusion.items()]
    path = folder / "models.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def assert_clean_stderr(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "Error:" not in stderr.replace("coolfusion:", ""), stderr


# =========================================================================== config


@pytest.mark.models
def test_one_model_only_answers_alone_and_says_so(home, smollm2_path):
    config = write_config(home.root, {"smollm2-135m": {"path": str(smollm2_path)}})
    result = run_coolfusion(home, "generate", "Say hello.", "--config", str(config), "--max-tokens", "6",
                            timeout=CLI_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert "note: only smollm2-135m is loaded: it answers alone" in result.stderr.splitlines()
    assert result.stdout.strip()
    assert_clean_stderr(result.stderr)


@pytest.mark.models
def test_a_stamp_that_cannot_be_written_still_loads_the_model(home):
    """A read-only or full cache: the good model is hashed, used, and the user told why it will be hashed again."""
    stamps = home.cache / "coolfusion-local" / "verified"
    stamps.parent.mkdir(parents=True)
    stamps.write_text("a file where the stamps folder should be")
    config = write_config(home.root, {"smollm2-135m": {"pypi": "smollm2-135m-instruct"}})
    result = run_coolfusion(home, "generate", "Say hello.", "--config", str(config), "--max-tokens", "6",
                            timeout=CLI_TIMEOUT)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "cannot record verified models" in line]
    assert len(notes) == 1 and notes[0].startswith(f"note: cannot record verified models in {stamps} (")
    assert notes[0].endswith("): they are used, but hashed again on every start")
    assert result.stdout.strip()
    assert_clean_stderr(result.stderr)


@pytest.mark.models
def test_a_model_that_fails_to_load_leaves_the_other_to_answer(home, smollm2_path, bad_models):
    config = write_config(home.root, {
        "broken": {"path": str(bad_models["no-weights"])},
        "smollm2-135m": {"path": str(smollm2_path)},
    })
    result = run_coolfusion(home, "generate", "Say hello.", "--config", str(config), "--max-tokens", "6",
                            timeout=CLI_TIMEOUT)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    [warning] = [line for line in lines if line.startswith("warning: ")]
    assert warning.startswith("warning: model 'broken': cannot load ")
    assert "note: only smollm2-135m is loaded: it answers alone" in lines
    assert result.stdout.strip()
    assert_clean_stderr(result.stderr)


# =========================================================================== model files


# Kinds the header checks catch before llama.cpp; the others are left to llama.cpp's own reason.
PREFLIGHT_CATCHES = {
    "empty-file": "is empty",
    "not-gguf": "is not a GGUF file",
    "html-page": "an HTML page",
    "truncated-header": "is truncated",
    "truncated-weights": "is truncated",
    "bad-version": "GGUF version 7",
    "unknown-tokenizer": "uses the tokenizer 'gpx2', which llama.cpp does not know",
    "missing-tokenizer": "has no tokenizer (tokenizer.ggml.model is missing)",
    "missing-tokens": "tokenizer.ggml.tokens is missing",
}


@pytest.fixture(scope="module")
def broken_loads(bad_models):
    """kind -> (load events, the answer's AnswerDone) from FusionEngine, each file loaded once."""
    results = {}

    def get(kind: str):
        if kind not in results:
            spec = ModelSpec(name=kind, path=bad_models[kind], n_ctx=512)
            with FusionEngine(Config(models=(spec,), source=Path("models.toml"))) as engine:
                events = list(engine.load())
                assert engine.status(kind).state == "failed"
                results[kind] = (events, list(engine.generate([Message("user", "hi")])))
        return results[kind]

    return get


@pytest.mark.models
@pytest.mark.parametrize("kind", list(BAD_MODEL_FILES))
def test_a_broken_model_file_is_one_failed_load(broken_loads, bad_models, kind):
    events, answer = broken_loads(kind)
    assert [type(e) for e in events] == [ModelLoadStarted, ModelLoadFailed]
    reason = events[-1].reason
    assert "\n" not in reason and reason.strip() == reason
    assert reason.startswith(f"model {kind!r}: ") and bad_models[kind].name in reason, reason
    [done] = answer
    assert isinstance(done, AnswerDone) and done.stop_reason == "error"
    assert done.error.startswith("no model is loaded (") and "\n" not in done.error


@pytest.mark.models
@pytest.mark.parametrize("kind", list(BAD_MODEL_FILES))
def test_a_broken_model_file_says_why(broken_loads, kind):
    events, _ = broken_loads(kind)
    reason = events[-1].reason
    assert any(fragment in reason for fragment in BAD_MODEL_FILES[kind][1]), reason


@pytest.mark.parametrize("kind", list(LLAMA_CPP_LOGS))
def test_load_failure_reason_picks_llama_cpp_s_explanation(kind):
    logged, expected = LLAMA_CPP_LOGS[kind]
    assert llama_log.load_failure_reason(logged) == expected


@pytest.mark.models
def test_broken_model_files_through_the_cli(home, bad_models):
    config = write_config(home.root, {kind: {"path": str(path), "n_ctx": 512} for kind, path in bad_models.items()})

    check = run_coolfusion(home, "models", "check", "--config", str(config), timeout=CLI_TIMEOUT)
    assert check.returncode == 1, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert len(lines) == len(BAD_MODEL_FILES), check.stdout
    for line, (kind, (_, expected)) in zip(lines, BAD_MODEL_FILES.items()):
        assert line.startswith(f"{kind}: FAILED: ") and any(fragment in line for fragment in expected), line
    assert_clean_stderr(check.stderr)

    generate = run_coolfusion(home, "generate", "hi", "--config", str(config), timeout=CLI_TIMEOUT)
    assert generate.returncode == 1
    assert generate.stdout.strip() == ""
    lines = generate.stderr.splitlines()
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert [w.split("'")[1] for w in warnings] == list(BAD_MODEL_FILES), generate.stderr
    for warning, (_, expected) in zip(warnings, BAD_MODEL_FILES.values()):
        assert any(fragment in warning for fragment in expected), warning
    assert lines[-1].startswith("coolfusion: no model is loaded (")
    # Between them at most the answer's stats line ("[error] 0 tokens in 0.0s ...").
    others = [line for line in lines[:-1] if not line.startswith("warning: ")]
    assert all(line.startswith("[error] ") for line in others) and len(others) <= 1, generate.stderr
    assert_clean_stderr(generate.stderr)


@pytest.mark.parametrize("kind", list(BAD_MODEL_FILES))
def test_preflight_names_what_is_wrong_with_the_file(bad_models, kind):
    if kind not in PREFLIGHT_CATCHES:
        assert preflight.check_gguf_for_llama(bad_models[kind], kind).path == bad_models[kind]
        return
    with pytest.raises(CoolfusionError) as caught:
        preflight.check_gguf_for_llama(bad_models[kind], kind)
    message = str(caught.value)
    assert message.startswith(f"model {kind!r}: ") and "\n" not in message
    assert PREFLIGHT_CATCHES[kind] in message


def test_preflight_accepts_the_real_offline_models(offline_model_path):
    for name in ("smollm2-135m", "qwen-coder-0.5b", "gemma3-270m"):
        spec = ModelSpec(name=name, pypi="x", n_ctx=4096)
        assert preflight.preflight(spec, offline_model_path(name)) == []


def write_huge_sparse_gguf(path: Path, gigabytes: int = 200) -> Path:
    """A valid GGUF header declaring `gigabytes` of weights, the data a sparse hole (no disk used)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("huge")
    writer.add_block_count(80)
    writer.add_context_length(4096)
    writer.add_embedding_length(8192)
    writer.add_head_count(64)
    writer.add_head_count_kv(8)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{i}" for i in range(1000)])
    count = gigabytes * 2**30 // 4
    writer.add_tensor_info("token_embd.weight", [count], np.dtype(np.float32), count * 4,
                           raw_dtype=gguf.GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    header = path.stat().st_size
    os.truncate(path, -(-header // 32) * 32 + count * 4)
    return path


@pytest.mark.skipif(preflight.available_memory() is None, reason="free memory cannot be measured here")
def test_a_model_too_big_for_memory_is_refused_before_loading(tmp_path):
    huge = write_huge_sparse_gguf(tmp_path / "huge.gguf")
    assert preflight.check_gguf_for_llama(huge).file_size > 200e9  # a well-formed file: only its size is wrong
    with pytest.raises(CoolfusionError) as caught:
        preflight.check_fits_in_memory(huge, 4096, name="huge")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("model 'huge' (huge.gguf) needs about 2")
    assert "for a 4,096-token context and buffers) but only " in message and " is free; " in message
    assert "lower n_ctx" in message
    with pytest.raises(CoolfusionError):
        preflight.preflight(ModelSpec(name="huge", path=huge), huge)


def test_the_memory_estimate_is_refused_and_accepted_at_the_edge(smollm2_path, monkeypatch):
    weights, context = preflight.estimate_memory(smollm2_path, 2048)
    assert weights == smollm2_path.stat().st_size
    # SmolLM2 135M: 30 layers x 3 KV heads x 64 x 2 (K and V) x 2 bytes per token, plus 49k-vocab buffers.
    assert 150e6 < context < 300e6
    preflight.check_fits_in_memory(smollm2_path, 2048, available=weights + context)
    with pytest.raises(CoolfusionError, match=r"needs about 3\d\d MB of memory .* but only 50 MB is free"):
        preflight.check_fits_in_memory(smollm2_path, 2048, available=50_000_000)
    monkeypatch.setenv(preflight.SKIP_MEMORY_CHECK_VARIABLE, "1")
    preflight.check_fits_in_memory(smollm2_path, 2048, available=50_000_000)


def test_a_container_memory_limit_is_respected(tmp_path):
    (tmp_path / "memory.max").write_text("1000000000\n")
    (tmp_path / "memory.current").write_text("700000000\n")
    (tmp_path / "memory.stat").write_text("anon 500000000\ninactive_file 200000000\n")
    assert preflight._cgroup_available(tmp_path) == 500_000_000
    (tmp_path / "memory.max").write_text("max\n")
    assert preflight._cgroup_available(tmp_path) is None


@pytest.mark.models
@pytest.mark.skipif(preflight.available_memory() is None, reason="free memory cannot be measured here")
def test_a_model_too_big_for_memory_through_the_cli(home):
    huge = write_huge_sparse_gguf(home.root / "huge.gguf")
    config = write_config(home.root, {"huge": {"path": str(huge)}})
    result = run_coolfusion(home, "generate", "hi", "--config", str(config), timeout=120)
    assert result.returncode == 1
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warning.startswith("warning: model 'huge' (huge.gguf) needs about ") and "is free" in warning
    assert_clean_stderr(result.stderr)
    check = run_coolfusion(home, "models", "check", "--config", str(config), timeout=120)
    assert check.returncode == 1
    assert check.stdout.startswith("huge: FAILED: model 'huge' (huge.gguf) needs about "), check.stdout
    assert_clean_stderr(check.stderr)


def test_gpu_layers_on_a_cpu_build_fall_back_with_a_notice(monkeypatch):
    monkeypatch.setattr(preflight, "gpu_offload_supported", lambda: False)
    notice = preflight.gpu_fallback_notice(ModelSpec(name="qwen", pypi="x", n_gpu_layers=99))
    assert notice.startswith("model 'qwen': n_gpu_layers asks for 99 layers on the GPU, but this llama.cpp build "
                             "has no GPU support, so it runs on the CPU; reinstall llama-cpp-python with CMAKE_ARGS=")
    assert "all layers" in preflight.gpu_fallback_notice(ModelSpec(name="q", pypi="x", n_gpu_layers=-1))
    assert preflight.gpu_fallback_notice(ModelSpec(name="q", pypi="x", n_gpu_layers=0)) is None
    assert preflight.gpu_fallback_notice(ModelSpec(name="q", pypi="x")) is None  # the default asks for nothing
    monkeypatch.setattr(preflight, "gpu_offload_supported", lambda: True)
    assert preflight.gpu_fallback_notice(ModelSpec(name="q", pypi="x", n_gpu_layers=99)) is None


@pytest.mark.models
@pytest.mark.skipif(preflight.gpu_offload_supported(), reason="this llama.cpp build can offload to a GPU")
def test_gpu_layers_on_a_cpu_build_still_load(home, smollm2_path):
    spec = ModelSpec(name="smollm2-135m", path=smollm2_path, n_gpu_layers=99, n_ctx=512)
    with FusionEngine(Config(models=(spec,), source=Path("m.toml"))) as engine:
        [loaded] = [e for e in engine.load() if isinstance(e, ModelLoaded)]
        assert loaded.n_gpu_layers == 0  # on the CPU, as the notice says
        assert [n for n in loaded.notices if "runs on the CPU" in n]
    config = write_config(home.root, {"smollm2-135m": {"path": str(smollm2_path), "n_gpu_layers": 99}})
    result = run_coolfusion(home, "generate", "Say hello.", "--config", str(config), "--max-tokens", "4",
                            timeout=CLI_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert ("note: model 'smollm2-135m': n_gpu_layers asks for 99 layers on the GPU, but this llama.cpp build "
            "has no GPU support, so it runs on the CPU") in result.stderr
    assert result.stdout.strip()
    assert_clean_stderr(result.stderr)


# =========================================================================== generation


@pytest.mark.models
def test_the_context_filling_mid_answer_keeps_the_partial_text(home, smollm2_path):
    config = write_config(home.root, {"smollm2-135m": {"path": str(smollm2_path), "n_ctx": 256}})
    # A long system message leaves about 100 tokens of the 256 for the answer: far less than the story needs.
    background = ("The story happens in a mountain village where the wind never stops, the river is frozen "
                  "half of the year and the people keep goats, bees and old books. ") * 3
    result = run_coolfusion(
        home, "generate", "Write a very long story about a dragon who learns to fly, at least 2000 words.",
        "--system", background, "--config", str(config), "--json", "--max-tokens", "2000", timeout=CLI_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    done = records[-1]
    assert done["done"] and done["stop_reason"] == "context_full", done
    segments = [r["text"] for r in records if "index" in r]
    assert len(done["text"]) > 100 and done["text"] == "".join(segments)
    notices = [r["notice"] for r in records if "notice" in r]
    assert any("context" in n and "full" in n for n in notices), notices
    assert_clean_stderr(result.stderr)


# A prompt whose answer is already written out: the model's first token is the end of its turn.
ANSWERED_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\nThe capital of France is Paris."
)


@pytest.mark.models
def test_a_model_that_ends_at_once_gives_an_empty_answer(offline_members):
    member = offline_members("smollm2-135m")[0]
    ended = Member(member.name, member.model, ChatFormat(ANSWERED_TEMPLATE), member.weight)
    from coolfusion_local.engine.fusion import generate
    from coolfusion_local.engine.modes import answer_settings

    events = list(generate([ended], [Message("user", "What is the capital of France?")],
                           answer_settings(mode="solo", max_tokens=16)))
    done = events[-1]
    assert isinstance(done, AnswerDone) and done.stop_reason == "eos", done
    assert done.text == "" and done.error is None
    assert member.model.answer_tokens == []


NO_BOUNDARY_PROMPTS = {
    "digits": "Write the first 50 decimal digits of pi as one number with no spaces.",
    "url": "Write only this URL: https://example.com/a/very/long/path/with-many-parts_and_underscores/and/more/"
           "parts/index.html?x=1&y=2",
}


@pytest.mark.models
@pytest.mark.parametrize("case", list(NO_BOUNDARY_PROMPTS))
def test_no_common_boundary_is_cut_after_a_bound(offline_members, case):
    """Two tokenizer families fused over text with no space for dozens of tokens (test_fusion.py has one model)."""
    from coolfusion_local.engine.events import SegmentChosen
    from coolfusion_local.engine.fusion import MAX_SEGMENT_TOKENS, generate
    from coolfusion_local.engine.modes import answer_settings

    members = offline_members("qwen-coder-0.5b", "smollm2-135m")
    events = list(generate(members, [Message("user", NO_BOUNDARY_PROMPTS[case])], answer_settings(max_tokens=64)))
    done = events[-1]
    segments = [e for e in events if isinstance(e, SegmentChosen)]
    assert done.stop_reason in ("eos", "max_tokens"), done
    assert done.stats.decisions.get("forced", 0) >= 1, done.stats.decisions
    assert max(c.tokens for s in segments for c in s.candidates.values()) <= MAX_SEGMENT_TOKENS
    assert max(len(word) for word in done.text.split()) > 40  # one long run, cut into bounded segments
    assert "\ufffd" not in done.text and done.text == "".join(s.text for s in segments)
    for member in members:
        held = member.model.detokenize(member.model.answer_tokens).decode("utf-8", errors="replace")
        assert held == done.text, member.name


MULTILINGUAL_PROMPTS = {
    "cjk": "用中文写两句关于猫的话。",
    "emoji": "Reply with five different emoji about the weather, separated by spaces.",
    "code": "Write a Python function that reverses a string, in a ```python code block.",
    "long-line": "Write the numbers from 1 to 60 on ONE line separated by commas, with no spaces and no newline.",
}


@pytest.mark.models
def test_multilingual_code_and_long_lines_stay_valid_text(offline_members):
    from coolfusion_local.engine.fusion import generate
    from coolfusion_local.engine.modes import answer_settings
    from coolfusion_local.engine.events import SegmentChosen

    members = offline_members("qwen-coder-0.5b", "smollm2-135m")
    for case, prompt in MULTILINGUAL_PROMPTS.items():
        events = list(generate(members, [Message("user", prompt)], answer_settings(max_tokens=40)))
        done = events[-1]
        segments = [e.text for e in events if isinstance(e, SegmentChosen)]
        assert done.stop_reason in ("eos", "max_tokens"), (case, done)
        assert "\ufffd" not in "".join(segments[:-1]), (case, segments)
        assert done.text == "".join(segments)
        for member in members:
            held = member.model.detokenize(member.model.answer_tokens)
            assert held.decode("utf-8", errors="replace") == done.text, (case, member.name)


@pytest.mark.models
def test_ctrl_c_keeps_the_partial_answer_and_exits_130(home, smollm2_path):
    config = write_config(home.root, {"smollm2-135m": {"path": str(smollm2_path)}})
    process = subprocess.Popen(
        [sys.executable, "-m", "coolfusion_local", "generate", "Write a long story about a lighthouse keeper.",
         "--config", str(config), "--max-tokens", "2000", "--quiet"],
        cwd=home.root, env=home.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # A shell runs background jobs with SIGINT ignored, and children inherit that:
        # give the command the terminal's default, as when a user runs it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first = os.read(process.stdout.fileno(), 4096)  # blocks until the first segment is printed
        assert first, "no output before the end"
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        rest, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stdout = (first + rest).decode("utf-8")
    assert process.returncode == 130, stderr
    assert stderr.decode() == "coolfusion: interrupted\n"
    assert stdout.startswith(first.decode("utf-8", errors="ignore")) and len(stdout.strip()) >= len(first.strip())


# =========================================================================== security


VOCAB_FAMILIES = ["llama-spm", "llama-bpe", "gpt-2", "phi-3", "gemma-4", "command-r", "qwen2"]
REAL_MODELS = ["qwen-coder-0.5b", "smollm2-135m", "gemma3-270m"]


@pytest.fixture(scope="module")
def tokenizer_member(vocab, offline_model_path):
    """family -> a Member over a vocabulary-only model, with the format the product would use."""
    opened: dict[str, Member] = {}

    def get(family: str) -> Member:
        if family not in opened:
            if family in REAL_MODELS:
                model = SourceModel(family, offline_model_path(family), vocab_only=True)
                template = "plain" if family == "gemma3-270m" else None
            else:
                model = vocab(family)
                template = FAMILY_TEMPLATES.get(family)
            spec = ModelSpec(name=family, pypi="x", chat_template=template)
            chat, _ = chat_format_for(spec, model)
            opened[family] = Member(family, model, chat)
        return opened[family]

    yield get
    for family in REAL_MODELS:
        if family in opened:
            opened[family].model.close()


def control_tokens(model: SourceModel) -> dict[str, int]:
    """The SPECIAL_STRINGS that are one control token in this vocabulary."""
    found = {}
    for text in SPECIAL_STRINGS:
        special = model.tokenize(text.encode(), special=True)
        if len(special) == 1 and model.tokenize(text.encode()) != special:
            found[text] = special[0]
    return found


@pytest.mark.parametrize("family", REAL_MODELS + VOCAB_FAMILIES)
def test_typed_special_tokens_stay_plain_text(tokenizer_member, family):
    member = tokenizer_member(family)
    model = member.model
    controls = control_tokens(model)
    assert controls, f"{family}: no control token found; the test would prove nothing"
    plain = prompt_tokens(member, [Message("user", "hi")])
    hostile = prompt_tokens(member, [Message("user", HOSTILE_USER_TEXT)])
    for text, token in controls.items():
        # The template's own markers are there as many times as for a harmless message; typed ones are text.
        assert hostile.count(token) == plain.count(token), (family, text)
    decoded = model.detokenize(hostile).decode("utf-8", errors="replace")
    assert all(text in decoded for text in controls), family
    ends = [t for t in hostile if model.is_end(t)]
    assert len(ends) == len([t for t in plain if model.is_end(t)]), family


SPACE_PREFIX_FAMILIES = ("llama-spm", "phi-3")  # SentencePiece vocabularies that add a space prefix


@pytest.mark.parametrize("family", REAL_MODELS + VOCAB_FAMILIES)
def test_special_token_text_in_an_answer_cannot_end_the_turn(tokenizer_member, family):
    """Another family's candidate that writes '<end_of_turn>' or '</s>' is scored and committed as text."""
    model = tokenizer_member(family).model
    controls = set(control_tokens(model).values())
    text = HOSTILE_USER_TEXT.encode()
    start, tokens = model.continuation(text)  # how every model takes in a candidate segment
    assert start == 0 and model.detokenize(tokens) == text
    assert tokens and not controls & set(tokens), family
    assert not any(model.is_end(t) for t in tokens), family


@pytest.mark.parametrize("family", SPACE_PREFIX_FAMILIES)
def test_a_sentencepiece_answer_can_start_with_a_segment(tokenizer_member, family):
    model = tokenizer_member(family).model  # vocabulary only: its answer is empty, as at the start of every answer
    start, tokens = model.continuation(b"Hello")
    assert model.detokenize(tokens).strip() == b"Hello"


@pytest.mark.parametrize("case", list(hostile_templates("MARKER")))
def test_a_hostile_template_never_runs(tmp_path, case):
    marker = tmp_path / "pwned"
    template = hostile_templates(str(marker))[case]
    try:
        parts = ChatFormat(template, bos_token="<s>", eos_token="</s>").render([Message("user", "hi")])
    except TemplateError as error:
        message = str(error)
        assert "\n" not in message and message.startswith("the chat template")
    else:  # rendered harmlessly: nothing of Python's internals leaks into the prompt
        text = "".join(p.text for p in parts)
        assert "class" not in text and "function" not in text and "module" not in text, text
    assert not marker.exists()


@pytest.mark.models
def test_a_hostile_template_in_models_toml_is_refused_in_one_line(home, smollm2_path):
    marker = home.root / "pwned"
    template = hostile_templates(str(marker))["cycler-globals-popen"]
    config = write_config(home.root, {"smollm2-135m": {"path": str(smollm2_path), "chat_template": template}})
    result = run_coolfusion(home, "generate", "hi", "--config", str(config), "--max-tokens", "4",
                            timeout=CLI_TIMEOUT)
    assert not marker.exists()
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("coolfusion: ") and "the chat template tried something unsafe and was stopped" in last
    assert_clean_stderr(result.stderr)


@pytest.mark.models
def test_a_hostile_template_inside_a_gguf_falls_back_to_plain(home, smollm2_bytes):
    template = "{{ cycler.__init__.__globals__.os.popen('touch pwned').read() }}"
    model = embed_chat_template(smollm2_bytes, template, home.root / "hostile.gguf")
    config = write_config(home.root, {"hostile": {"path": str(model)}})
    info = run_coolfusion(home, "models", "info", "hostile", "--config", str(config))
    assert info.returncode == 0 and "popen" in info.stdout  # shown as text, never rendered
    result = run_coolfusion(home, "generate", "Say hello.", "--config", str(config), "--max-tokens", "6",
                            timeout=CLI_TIMEOUT)
    assert not (home.root / "pwned").exists()
    assert result.returncode == 0, result.stderr
    loaded = next(line for line in result.stderr.splitlines() if line.startswith("loaded hostile"))
    assert "(plain (the chat template tried something unsafe and was stopped: " in loaded
    assert result.stdout.strip()
    assert_clean_stderr(result.stderr)


BOMB_SCRIPT = textwrap.dedent(
    """
    import resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
    from coolfusion_local.engine.prompts import ChatFormat, TemplateError
    from coolfusion_local.engine.events import Message
    started = time.perf_counter()
    try:
        parts = ChatFormat(sys.argv[1]).render([Message("user", "hi")])
        print("rendered", sum(len(p.text) for p in parts))
    except TemplateError as error:
        print("refused", error)
    """
)


def test_a_template_cannot_blow_up_the_prompt():
    result = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, MEMORY_BOMB_TEMPLATE], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused the chat template"), result.stdout


def _network_log(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    assert any(line.endswith("guard installed") for line in lines), "the socket guard did not load"
    return [line for line in lines if not line.endswith("guard installed")]


def test_listing_never_touches_the_network(home, tmp_path):
    log = tmp_path / "sockets.log"
    env = guarded_env(home, tmp_path / "guard", log)
    for args in (["models", "list"], ["models", "info", "smollm2-135m"]):
        result = subprocess.run([sys.executable, "-m", "coolfusion_local", *args], cwd=home.root, env=env,
                                capture_output=True, text=True, timeout=120)
        assert "Traceback" not in result.stderr, result.stderr
    assert _network_log(log) == []


@pytest.mark.models
def test_generate_never_touches_the_network(home, tmp_path):
    """A PyPI-carried model (verified and used in place): generate and check stay offline."""
    log = tmp_path / "sockets.log"
    env = guarded_env(home, tmp_path / "guard", log)
    config = str(write_config(home.root, {"smollm2-135m": {"pypi": "smollm2-135m-instruct"}}))
    for args in (["generate", "Say hi.", "--max-tokens", "4", "--config", config],
                 ["models", "check", "--config", config]):
        result = subprocess.run([sys.executable, "-m", "coolfusion_local", *args], cwd=home.root, env=env,
                                capture_output=True, text=True, timeout=CLI_TIMEOUT)
        assert result.returncode == 0, result.stdout + result.stderr
    assert _network_log(log) == []


# =========================================================================== storage


def test_kill_9_while_writing_loses_no_finished_message(tmp_path):
    path = tmp_path / DB_FILENAME
    writer = run_script(STORE_WRITER, str(path), "m", "100000", "20000")
    finished = -1
    for line in writer.stdout:
        finished = int(line)
        if finished >= 40:
            break
    os.kill(writer.pid, signal.SIGKILL)  # in the middle of the next message
    writer.wait()
    assert writer.returncode == -signal.SIGKILL
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = Store(path)
    assert store.persistent and store.take_notices() == []
    [summary] = store.list_conversations()
    messages = store.messages(summary.id)
    assert len(messages) >= finished + 1
    for i, message in enumerate(messages):
        assert message.content == f"m{i}:" + "x" * 20000
        assert [s.text for s in message.segments] == [message.content[k::3] for k in range(3)]
    store.close()


def test_a_history_that_turns_read_only_keeps_the_chat_in_memory(tmp_path):
    path = tmp_path / DB_FILENAME
    store = Store(path)
    cid = store.create_conversation("before")
    store.add_message(cid, StoredMessage("user", "saved while writable"))
    store._conn.execute("PRAGMA query_only = ON")  # the file became read-only under the running chat
    store.add_message(cid, StoredMessage("assistant", "kept in memory"))  # must not raise
    assert not store.persistent
    [notice] = store.take_notices()
    assert "readonly" in notice and "continues in memory" in notice and "\n" not in notice
    assert [m.content for m in store.messages(cid)] == ["saved while writable", "kept in memory"]
    store.close()
    assert [m.content for m in Store(path).messages(cid)] == ["saved while writable"]


def test_a_read_only_history_file_at_start_is_kept_in_memory(tmp_path, monkeypatch):
    path = tmp_path / DB_FILENAME
    store = Store(path)
    store.add_message(store.create_conversation("old"), StoredMessage("user", "old message"))
    store.close()
    real_connect = sqlite3.connect

    def read_only(database, *args, **kwargs):  # root ignores chmod; open the file the way a read-only disk would
        if str(database) == str(path):
            return real_connect(f"file:{database}?mode=ro", *args, uri=True, **kwargs)
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", read_only)
    store = Store(path)
    [old] = store.list_conversations()
    assert [m.content for m in store.messages(old.id)] == ["old message"]  # the history is readable
    cid = store.create_conversation("new chat")  # the first write finds the file read-only: must not raise
    assert not store.persistent
    [notice] = store.take_notices()
    assert "readonly" in notice and "continues in memory" in notice and "\n" not in notice
    store.add_message(cid, StoredMessage("user", "still works"))
    assert [m.content for m in store.messages(cid)] == ["still works"]
    assert [m.content for m in store.messages(old.id)] == ["old message"]  # kept in the memory copy
    store.close()
    monkeypatch.setattr(sqlite3, "connect", real_connect)
    assert [c.title for c in Store(path).list_conversations()] == ["old"]  # the file is untouched


def test_two_processes_write_one_history_at_the_same_time(tmp_path):
    path = tmp_path / DB_FILENAME
    Store(path).create_conversation("shared")
    writers = [run_script(STORE_WRITER, str(path), tag, "60", "2000") for tag in ("a", "b")]
    for writer in writers:
        writer.communicate(timeout=120)
        assert writer.returncode == 0
    store = Store(path)
    [summary] = store.list_conversations()
    contents = [m.content.split(":")[0] for m in store.messages(summary.id)]
    for tag in ("a", "b"):
        assert [c for c in contents if c.startswith(tag)] == [f"{tag}{i}" for i in range(60)]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()


# =========================================================================== load


@pytest.mark.models
def test_100_turns_do_not_grow_memory(tmp_path):
    """SmolLM2 alone, n_ctx 128, 100 turns of 8 tokens; the engine trims the oldest turns every answer.

    The client sends the last 24 messages (the engine still has to leave some out each turn): sending
    all 400 is correct too but costs minutes, see test_trimming_a_long_conversation_renders_few_prompts.
    """
    out = tmp_path / "turns.json"
    result = subprocess.run([sys.executable, "-c", TURNS_SCRIPT, "100", "128", "24", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(out.read_text())
    rss = {key: round(value / 2**20, 1) for key, value in record["rss"].items()}
    print(f"\nRSS MiB: {rss}; seconds: {record['seconds']}; trimmed turns: {record['trimmed_turns']}; "
          f"stop reasons: {record['stop_reasons']}")
    assert record["trimmed_turns"] > 80  # the conversation outgrew the context: old turns were left out
    assert sum(record["stop_reasons"].values()) == 100 and "error" not in record["stop_reasons"]
    assert rss["100"] - rss["20"] < 32, rss


def test_trimming_a_long_conversation_renders_few_prompts(offline_model_path):
    from coolfusion_local.engine.fusion import ANSWER_RESERVE, fit_prompts

    model = SourceModel("smollm2-135m", offline_model_path("smollm2-135m"), vocab_only=True)
    try:
        chat, _ = chat_format_for(ModelSpec(name="smollm2-135m", pypi="x"), model)
        model.n_ctx = 1024  # as if loaded with n_ctx = 1024 (fitting only tokenizes)
        renders = []
        real_render = chat.render
        chat.render = lambda messages: renders.append(len(messages)) or real_render(messages)
        history = []
        for turn in range(200):
            history += [Message("user", f"Turn {turn}: name one colour."), Message("assistant", "Blue.")]
        history.append(Message("user", "And now?"))
        started = time.perf_counter()
        prompts, dropped = fit_prompts([Member("smollm2-135m", model, chat)], history, ANSWER_RESERVE)
        seconds = time.perf_counter() - started
        assert len(prompts["smollm2-135m"]) + ANSWER_RESERVE <= 1024 and dropped > 300
        print(f"\nfit_prompts: {len(renders)} renders, {seconds:.2f} s for {len(history)} messages")
        assert len(renders) <= 20, f"{len(renders)} renders, {seconds:.2f} s"
    finally:
        model.close()
