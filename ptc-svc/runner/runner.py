"""ptc runner: runs model-written Python inside the sandbox and speaks the host protocol.

Standard library only. ptc-svc starts `python3 -I -B -u -c <bootstrap>`; the bootstrap reads this
source from stdin, checks its SHA-256 and executes it with RUNNER_SHA256 set. The same file is
baked into the sandbox images at /opt/ptc/runner.py (then started directly) and embedded in the
ptc-svc binary, so the injected copy and the image copy never drift.

Protocol (ptc.md section 13): one UTF-8 JSON object per line, field "type" and "v" (version).
  runner -> host (on the original stdout):  ready, tool_call, blocked, done
  host -> runner (on stdin):                execute, results, shutdown
User output never reaches the protocol channel: at start the channel moves to private duplicates
of descriptors 0 and 1, and descriptors 0, 1 and 2 point at the null device; print() and
sys.stdout/sys.stderr write to per-execution in-memory buffers.
"""

import ast
import asyncio
import builtins
import io
import json
import keyword
import os
import re
import sys
import threading
import traceback

PROTOCOL = 1
RUNNER_FILENAME = "<ptc-runner>"
CODE_FILENAME = "<code>"
TRACEBACK_LINES = 50
RETURN_VALUE_CHARS = 4096

_in_child = False


class ToolError(Exception):
    """Raised in the code when a tool call fails (the client answered with is_error)."""


ToolError.__module__ = "builtins"  # tracebacks say `ToolError: ...`, not the runner's module


def _runner_sha256():
    digest = globals().get("RUNNER_SHA256")
    if digest:
        return digest
    import hashlib

    with open(__file__, "rb") as source:
        return hashlib.sha256(source.read()).hexdigest()


RUNNER_VERSION = "%d.%s" % (PROTOCOL, _runner_sha256()[:12])


def python_name(name):
    """The identifier a tool is bound under (the rule is documented in ptc.proto)."""
    ident = re.sub(r"\W", "_", name, flags=re.ASCII)
    if not ident or ident[0].isdigit():
        ident = "_" + ident
    if keyword.iskeyword(ident):
        ident += "_"
    return ident


class Channel:
    """Writes protocol messages, one line each, on the private duplicate of stdout."""

    def __init__(self, fd):
        self.fd = fd
        self.lock = threading.Lock()

    @staticmethod
    def encode(message):
        message["v"] = PROTOCOL
        text = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        # json.dumps escapes newlines; 'replace' turns lone surrogates into '?' (never invalid UTF-8).
        return (text + "\n").encode("utf-8", "replace")

    def send_line(self, line):
        if _in_child or self.fd is None:
            return
        with self.lock:
            view = memoryview(line)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]

    def send(self, message):
        self.send_line(self.encode(message))


class _BytesAdapter:
    """`sys.stdout.buffer` for code that writes bytes."""

    def __init__(self, text):
        self.text = text

    def write(self, data):
        self.text.write(bytes(data).decode("utf-8", "replace"))
        return len(data)

    def flush(self):
        pass


class Capture(io.TextIOBase):
    """An in-memory stdout/stderr that keeps at most `limit` UTF-8 bytes and counts the rest."""

    def __init__(self, limit):
        super().__init__()
        self.parts = []
        self.size = 0
        self.limit = max(0, int(limit))
        self.dropped = 0
        self.buffer = _BytesAdapter(self)

    @property
    def encoding(self):
        return "utf-8"

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        data = text.encode("utf-8", "replace")
        room = self.limit - self.size
        if len(data) <= room:
            self.parts.append(text)
            self.size += len(data)
        else:
            kept = data[: max(room, 0)].decode("utf-8", "ignore")
            kept_len = len(kept.encode("utf-8"))
            self.parts.append(kept)
            self.size += kept_len
            self.dropped += len(data) - kept_len
        return len(text)

    def value(self):
        return "".join(self.parts)


def compile_code(code):
    """Compiles `code` as the body of an async function, so top-level await (and return) work.

    Line numbers stay the user's own: the statements keep their positions inside the template.
    """
    tree = ast.parse(code, filename=CODE_FILENAME, mode="exec")
    template = ast.parse("async def __ptc_main__():\n    pass\n", filename=CODE_FILENAME)
    function = template.body[0]
    if tree.body:
        function.body = tree.body
    return compile(template, CODE_FILENAME, "exec", dont_inherit=True)


def format_exception(error):
    """The traceback without the runner's own frames, last TRACEBACK_LINES lines."""
    report = traceback.TracebackException.from_exception(error)
    for exc in _chain(report):
        frames = [f for f in exc.stack if f.filename != RUNNER_FILENAME]
        exc.stack = traceback.StackSummary.from_list(frames)
    lines = "".join(report.format()).replace("__ptc_main__", "<module>").splitlines()
    return "\n".join(lines[-TRACEBACK_LINES:]) + "\n"


def _chain(report):
    seen = set()
    while report is not None and id(report) not in seen:
        seen.add(id(report))
        yield report
        report = report.__cause__ or report.__context__


def _exit_code(error):
    code = error.code
    if code is None:
        return 0, ""
    if isinstance(code, int):
        return code, ""
    return 1, "%s\n" % (code,)


class Execution:
    """One run of one code block: its tool calls and their futures."""

    def __init__(self, runner, message):
        self.runner = runner
        self.id = str(message["execution_id"])
        self.tool_names = [str(name) for name in message.get("tools", [])]
        self.max_calls = int(message.get("max_calls", 1000))
        self.stdout = Capture(message.get("max_stdout_bytes", 65536))
        self.stderr = Capture(message.get("max_stderr_bytes", 16384))
        self.code = str(message.get("code", ""))
        self.calls = 0
        self.futures = {}
        self.finished = False

    def namespace(self):
        names = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "asyncio": asyncio,
            "json": json,
            "ToolError": ToolError,
            "call_tool": self.call_tool,
        }
        for name in self.tool_names:
            names[python_name(name)] = self._tool_function(name)
        return names

    def _tool_function(self, name):
        ident = python_name(name)

        async def tool(*args, **kwargs):
            if args:
                raise TypeError(
                    "%s() takes keyword arguments only, e.g. %s(name=value)" % (ident, ident)
                )
            return await self.call(name, kwargs)

        tool.__name__ = tool.__qualname__ = ident
        return tool

    async def call_tool(self, name, /, **kwargs):
        if name not in self.tool_names:
            raise ToolError("unknown tool: %s" % (name,))
        return await self.call(name, kwargs)

    async def call(self, name, arguments):
        if self.finished:
            raise ToolError("the execution has finished")
        if self.calls >= self.max_calls:
            raise ToolError("tool call limit reached")
        seq = self.calls + 1
        message = {
            "type": "tool_call",
            "execution_id": self.id,
            "seq": seq,
            "tool": name,
            "arguments": arguments,
        }
        try:
            line = Channel.encode(message)
        except (TypeError, ValueError) as error:
            raise TypeError("arguments of %s() must be JSON-serializable: %s" % (name, error))
        self.calls = seq
        future = asyncio.get_running_loop().create_future()
        self.futures[seq] = future
        self.runner.channel.send_line(line)
        self.runner.schedule_idle_check()
        try:
            ok, value = await future
        finally:
            self.futures.pop(seq, None)
        if ok:
            return value
        raise ToolError(value)

    def waiting(self):
        return any(not future.done() for future in self.futures.values())

    def resolve(self, results):
        for result in results:
            seq = result.get("seq")
            future = self.futures.get(seq)
            if future is None or future.done():
                self.runner.diag("results: no pending call %r" % (seq,))
                continue
            if result.get("ok"):
                future.set_result((True, str(result.get("value", ""))))
            else:
                future.set_result((False, str(result.get("error", ""))))


class Runner:
    def __init__(self, channel, in_fd, diag):
        self.channel = channel
        self.in_fd = in_fd
        self.diag_file = diag
        self.current = None
        self.check_scheduled = False
        self.blocked_sent = False
        self.loop = None
        self.base_fds = 0
        self.own_tasks = set()

    def diag(self, text):
        try:
            self.diag_file.write("ptc-runner: %s\n" % (text,))
        except (OSError, ValueError):
            pass

    async def serve(self):
        self.loop = asyncio.get_running_loop()
        self.own_tasks.add(asyncio.current_task())
        self.base_fds = self._selector_fds()
        queue = asyncio.Queue()
        reader = threading.Thread(target=self._read_lines, args=(queue,), daemon=True)
        reader.start()
        self.channel.send(
            {
                "type": "ready",
                "runner_version": RUNNER_VERSION,
                "python_version": sys.version.split()[0],
            }
        )
        while True:
            line = await queue.get()
            if line is None:
                return
            try:
                message = json.loads(line)
                kind = message.get("type")
            except (ValueError, AttributeError):
                self.diag("ignoring a malformed line")
                continue
            if kind == "shutdown":
                return
            if kind == "execute":
                if self.current is not None:
                    self.diag("execute while an execution runs: ignored")
                    continue
                task = asyncio.ensure_future(self.execute(message))
                self.own_tasks.add(task)
                task.add_done_callback(self.own_tasks.discard)
            elif kind == "results":
                execution = self.current
                if execution is None or execution.id != message.get("execution_id"):
                    self.diag("results for an unknown execution: ignored")
                    continue
                self.blocked_sent = False
                execution.resolve(message.get("results", []))
            else:
                self.diag("unknown message type %r: ignored" % (kind,))

    def _read_lines(self, queue):
        with os.fdopen(self.in_fd, "rb", buffering=1 << 16) as source:
            for line in source:
                self.loop.call_soon_threadsafe(queue.put_nowait, line)
        self.loop.call_soon_threadsafe(queue.put_nowait, None)

    async def execute(self, message):
        execution = Execution(self, message)
        self.current = execution
        self.blocked_sent = False
        return_code, return_value = 0, ""
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = execution.stdout, execution.stderr
        try:
            namespace = execution.namespace()
            exec(compile_code(execution.code), namespace)
            body = namespace["__ptc_main__"]()
            if not asyncio.iscoroutine(body):
                raise SyntaxError("'yield' is not allowed at the top level of the code")
            result = await body
            if result is not None:
                return_value = repr(result)[:RETURN_VALUE_CHARS]
        except SystemExit as error:
            return_code, text = _exit_code(error)
            execution.stderr.write(text)
        except BaseException as error:  # the code's failure, whatever it is, is its result
            return_code = 1
            execution.stderr.write(format_exception(error))
        finally:
            execution.finished = True
            sys.stdout, sys.stderr = Capture(0), Capture(0)
            del saved
            self._cancel_leftovers()
            self.current = None
        if _in_child:
            os._exit(return_code & 0xFF)
        self.channel.send(
            {
                "type": "done",
                "execution_id": execution.id,
                "stdout": execution.stdout.value(),
                "stderr": execution.stderr.value(),
                "return_code": return_code,
                "stdout_dropped": execution.stdout.dropped,
                "stderr_dropped": execution.stderr.dropped,
                "return_value": return_value,
            }
        )

    def _cancel_leftovers(self):
        """Tasks the code started and did not await must not outlive its execution."""
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current and task not in self.own_tasks:
                task.cancel()

    def schedule_idle_check(self):
        if not self.check_scheduled:
            self.check_scheduled = True
            self.loop.call_soon(self._idle_check)

    def _selector_fds(self):
        try:
            return len(self.loop._selector.get_map())
        except Exception:  # noqa: BLE001 - another loop implementation: no blocked reports
            return -1

    def _idle_check(self):
        """Reports `blocked` when every task waits on a tool result, which closes the batch at once.

        Reads asyncio internals (ready queue, timers, selector); with any doubt it stays silent and
        the host's batch timers close the batch instead.
        """
        self.check_scheduled = False
        execution = self.current
        if execution is None or self.blocked_sent or not execution.waiting():
            return
        try:
            ready = len(self.loop._ready)
            timers = any(not handle.cancelled() for handle in self.loop._scheduled)
            fds = self._selector_fds()
        except Exception:  # noqa: BLE001
            return
        if ready:
            self.schedule_idle_check()
            return
        if timers or fds < 0 or fds > self.base_fds:
            return
        self.blocked_sent = True
        # `calls` lets the host ignore a report that crossed its own batch timer on the wire.
        self.channel.send({"type": "blocked", "execution_id": execution.id, "calls": execution.calls})


def _after_fork_in_child(fds):
    global _in_child
    _in_child = True
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def main():
    in_fd, out_fd, diag_fd = os.dup(0), os.dup(1), os.dup(2)
    null_in = os.open(os.devnull, os.O_RDONLY)
    null_out = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null_in, 0)
    os.dup2(null_out, 1)
    os.dup2(null_out, 2)
    os.close(null_in)
    os.close(null_out)
    # A forked child must never speak the protocol (a fork bomb would flood it otherwise).
    os.register_at_fork(after_in_child=lambda: _after_fork_in_child((in_fd, out_fd)))
    sys.stdin = io.StringIO("")
    sys.stdout, sys.stderr = Capture(0), Capture(0)
    diag = os.fdopen(diag_fd, "w", buffering=1, encoding="utf-8", errors="replace")
    if os.getcwd() == "/workspace":
        # Docker creates the working directory 0755 over the tmpfs' mode=0700; restore it.
        try:
            os.chmod("/workspace", 0o700)
        except OSError:
            pass
    runner = Runner(Channel(out_fd), in_fd, diag)
    asyncio.run(runner.serve())
    os._exit(0)


if __name__ in ("__main__", "__ptc_runner__"):
    main()
