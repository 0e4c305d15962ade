"""Exec through the Python SDK: run_command with stdin and env, shell,
stream_command, wait_for_port (API.md §4.4, §5.1, §8)."""

from __future__ import annotations

import time

import createos
import pytest
from createos import ExecStreamEventType as Ev
from createos import RunCommandRequest as Cmd

from conftest import SECRET


def test_run_command_buffers_output(sandbox):
    res = sandbox.run_command(Cmd(command="echo", arguments=["a", "b"]))
    assert res.result.standard_output == "a b\n"
    assert res.result.standard_error == ""
    assert res.result.exit_code == 0
    assert res.result.error_message == ""
    assert res.execution_milliseconds >= 0


def test_run_command_is_an_argv_not_a_shell(sandbox):
    res = sandbox.run_command(Cmd(command="echo", arguments=["$HOME", "a;b"]))
    assert res.result.standard_output == "$HOME a;b\n"


def test_non_zero_exit_is_a_result(sandbox):
    res = sandbox.run_command(Cmd(command="bash", arguments=["-c", "echo o; echo e >&2; exit 5"]))
    assert res.result.exit_code == 5
    assert res.result.standard_output == "o\n"
    assert res.result.standard_error == "e\n"


def test_stdin_is_fed_to_the_command(sandbox):
    res = sandbox.run_command(
        Cmd(command="tr", arguments=["a-z", "A-Z"]),
        createos.ExecOptions(standard_input="hello\nworld\n"),
    )
    assert res.result.standard_output == "HELLO\nWORLD\n"


def test_per_exec_env_and_sandbox_envs(sandbox):
    res = sandbox.run_command(
        Cmd(command="bash", arguments=["-c", 'echo "$GREETING|$PER_EXEC|${#CONF_SECRET}"']),
        createos.ExecOptions(environment_variables={"PER_EXEC": "only-here"}),
    )
    assert res.result.standard_output == f"hi there|only-here|{len(SECRET)}\n"
    later = sandbox.run_command(Cmd(command="bash", arguments=["-c", 'echo "[$PER_EXEC]"']))
    assert later.result.standard_output == "[]\n", "per-exec env does not persist"


def test_per_exec_env_overrides_the_sandbox_env(sandbox):
    res = sandbox.run_command(
        Cmd(command="printenv", arguments=["GREETING"]),
        createos.ExecOptions(environment_variables={"GREETING": "override"}),
    )
    assert res.result.standard_output == "override\n"


def test_shell_runs_bash_and_raises_on_failure(sandbox):
    ok = sandbox.shell("x=$((6*7)); echo $x")
    assert ok.result.standard_output == "42\n"
    with pytest.raises(createos.CommandError) as info:
        sandbox.shell("echo nope >&2; exit 9")
    assert "9" in str(info.value)
    assert "nope" in str(info.value)


def test_stream_command_yields_frames_then_exit(sandbox):
    events = []
    with sandbox.stream_command(
        Cmd(command="bash", arguments=["-c", "for i in 1 2 3; do echo out$i; sleep 0.2; done; echo e >&2; exit 2"])
    ) as stream:
        for ev in stream:
            events.append(ev)
    real = [e for e in events if e.type != Ev.HEARTBEAT]
    assert "".join(e.data for e in real if e.type == Ev.STDOUT) == "out1\nout2\nout3\n"
    assert "".join(e.data for e in real if e.type == Ev.STDERR) == "e\n"
    assert sum(1 for e in real if e.type == Ev.STDOUT) >= 2
    assert real[-1].type == Ev.EXIT and real[-1].exit_code == 2


def test_stream_command_with_stdin_and_env(sandbox):
    with sandbox.stream_command(
        Cmd(command="bash", arguments=["-c", 'cat; echo "$V"']),
        createos.ExecOptions(standard_input="from stdin\n", environment_variables={"V": "from env"}),
    ) as stream:
        events = list(stream)
    out = "".join(e.data for e in events if e.type == Ev.STDOUT)
    assert out == "from stdin\nfrom env\n"
    assert events[-1].exit_code == 0


def test_stream_frames_arrive_while_running(sandbox):
    start = time.monotonic()
    first = None
    with sandbox.stream_command(Cmd(command="bash", arguments=["-c", "echo first; sleep 2; echo second"])) as s:
        for ev in s:
            if ev.type == Ev.STDOUT and first is None:
                first = time.monotonic() - start
    total = time.monotonic() - start
    assert first is not None and first < total - 1.0, (first, total)


def test_unicode_line_separators_survive_the_stream(sandbox):
    # A raw U+2028 inside a JSON string would split the line for the Python
    # parser (API.md §5 rule 4); the server must escape it.
    text = "a\u2028b\u2029c\u0085d\n"
    with sandbox.stream_command(Cmd(command="printf", arguments=["%s", text])) as s:
        events = list(s)
    assert "".join(e.data for e in events if e.type == Ev.STDOUT) == text


def test_wait_for_port(sandbox):
    sandbox.run_command(
        Cmd(
            command="bash",
            arguments=["-c", "setsid python3 -m http.server 18090 --bind 127.0.0.1 >/dev/null 2>&1 < /dev/null & disown"],
        )
    )
    assert sandbox.wait_for_port(18090, timeout=20) is None
    with pytest.raises(createos.OperationTimeout):
        sandbox.wait_for_port(18091, timeout=1.5)


def test_closing_a_stream_early_stops_the_command(sandbox):
    marker = "sleep 929292"
    with sandbox.stream_command(Cmd(command="bash", arguments=["-c", f"echo started; exec {marker}"])) as s:
        for ev in s:
            if ev.type == Ev.STDOUT and "started" in ev.data:
                break
    deadline = time.monotonic() + 15
    while True:
        ps = sandbox.run_command(Cmd(command="ps", arguments=["-eo", "args"]))
        if marker not in ps.result.standard_output:
            break
        assert time.monotonic() < deadline, ps.result.standard_output
        time.sleep(0.25)
