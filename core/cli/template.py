"""docker's ``--format``: Go's text/template, as docker's scripts write it.

Actions print a pipeline (``{{.State.Pid}}``, ``{{json .Config}}``, ``{{.Names | upper}}``,
``{{(index .NetworkSettings.Networks "net").IPAddress}}``), and ``if``/``else``/``range``/
``with``/``end``, ``break``/``continue``, variables (``$``, ``$x := ...``, ``range $k, $v :=``),
comments and the ``{{-``/``-}}`` trims are Go's. The functions are Go's builtins (``and``, ``or``,
``not``, ``len``, ``index``, ``slice``, ``eq``...``ge``, ``print``, ``printf``, ``println``,
``html``, ``urlquery``) and docker's (``json``, ``split``, ``join``, ``title``, ``lower``,
``upper``, ``pad``, ``truncate``).
Values print as Go's ``%v`` does (``map[a:b]``, ``[x y]``, ``1e+06``). A listing's row also has
docker's ``{{.Label "KEY"}}`` (``Row``). What Go's templates have beyond this (``define``,
``template``, ``block``, ``js``, ``call``) is refused in one line naming it, as is an
unknown field: never printed wrong.
"""

from __future__ import annotations

from mrun.errors import InvalidSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any


class Row(dict):  # type: ignore[type-arg]
    """A listing's row: its fields (what ``{{json .}}`` shows), and ``methods``, docker's calls on
    it that take arguments (``{{.Label "com.example.team"}}``)."""

    def __init__(self, fields: dict[str, Any], methods: dict[str, Callable[..., Any]] | None = None) -> None:
        super().__init__(fields)
        self.methods = methods or {}


def label_method(labels: dict[str, str]) -> dict[str, Callable[..., Any]]:
    """docker's ``Label(name)`` of a container, volume or network: its value, "" if it has none."""
    return {"Label": lambda name: labels.get(name, "") if isinstance(name, str) else ""}


def header_label(name: Any) -> str:
    """docker's table header for ``{{.Label "com.docker.compose.project"}}``: ``project``."""
    return str(name).split(".")[-1].replace("-", " ").replace("_", " ")


class TemplateError(InvalidSpec):
    """One line, whatever the template held (an action may span lines)."""

    def __init__(self, message: str) -> None:
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))


class Template:
    """A template parsed once, for the rows of a listing or the documents of an inspect."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = parse(source)

    def render(self, data: Any) -> str:
        """Executed over ``data`` (nested dicts and lists, as JSON gives them)."""
        out: list[str] = []
        try:
            _Run(self.source).nodes(self.nodes, data, [("$", data)], out)
        except RecursionError:
            raise TemplateError(f"--format {self.source[:200]!r}...: nested deeper than mrun reads") from None
        return "".join(out)

    def check_fields(self, fields: set[str]) -> None:
        """Refuse, before anything is read, a field of the row (``.Name`` where the dot is the
        row, and ``$.Name``) that is not one of ``fields``: a listing's template is checked so
        even when it has no rows to print."""
        for name in _row_fields(self.nodes, True):
            if name not in fields:
                raise TemplateError(f"--format {self.source!r}: .{name}: no field {name!r}")


def render(template: str, data: Any) -> str:
    """``template`` executed once over ``data``."""
    return Template(template).render(data)


# ---- parsing -----------------------------------------------------------------------------------

_CONTROL = ("if", "else", "end", "range", "with", "break", "continue")
_REFUSED = ("define", "template", "block")


def parse(template: str) -> list[Any]:
    """The template as a tree: text (str), ("out", pipe), ("if"|"with", pipe, body, otherwise),
    ("range", pipe, body, otherwise), ("break",), ("continue",)."""
    try:
        nodes, _ = _body(template, _split(template), 0, top=True)
    except RecursionError:  # thousands of {{if}} or ( in one template: one line, not a traceback
        raise TemplateError(f"--format {template[:200]!r}...: nested deeper than mrun reads") from None
    return nodes


def _split(template: str) -> list[Any]:
    """Text and actions, the trims applied: [str | ("action", source)]."""
    parts: list[Any] = []
    i, n = 0, len(template)
    while True:
        start = template.find("{{", i)
        if start < 0:
            parts.append(template[i:])
            return parts
        text = template[i:start]
        inner = start + 2
        if template.startswith("- ", inner) or template[inner:inner + 2] in ("-\t", "-\n", "-\r"):
            text = text.rstrip(" \t\r\n")
            inner += 2
        end = _action_end(template, inner)
        if end < 0:
            raise TemplateError(f"--format {template!r}: an action is not closed with }}}}")
        source, after = template[inner:end], end + 2
        if source.endswith((" -", "\t-", "\n-", "\r-")):
            source = source[:-2]
            while after < n and template[after] in " \t\r\n":
                after += 1
        parts.append(text)
        source = source.strip(" \t\r\n")
        if not (source.startswith("/*") and source.endswith("*/")):
            parts.append(("action", source))
        i = after


def _action_end(template: str, i: int) -> int:
    """Where the action begun at ``i`` closes (its "}}", outside quotes and comments), or -1."""
    n = len(template)
    while i < n:
        c = template[i]
        if template.startswith("}}", i):
            return i
        if template.startswith("/*", i):
            close = template.find("*/", i + 2)
            if close < 0:
                return -1
            i = close + 2
            continue
        if c in "\"'`":
            i += 1
            while i < n and template[i] != c:
                if template[i] == "\\" and c != "`":
                    i += 1
                i += 1
        i += 1
    return -1


def _body(template: str, parts: list[Any], i: int, top: bool = False, in_range: bool = False
          ) -> tuple[list[Any], int]:
    """Nodes from ``parts[i]`` up to (not past) an ``else`` or ``end`` of this level. -> (nodes, next).
    ``in_range``: inside a range's body, where break and continue belong."""
    nodes: list[Any] = []
    while i < len(parts):
        part = parts[i]
        if isinstance(part, str):
            if part:
                nodes.append(part)
            i += 1
            continue
        source = part[1]
        word = source.split(None, 1)[0] if source.split() else ""
        if word in ("else", "end"):
            if top:
                raise TemplateError(f"--format {template!r}: {{{{{word}}}}} without an if, range or with")
            return nodes, i
        if word in _REFUSED or word in ("js", "call"):
            raise TemplateError(f"--format {template!r}: {{{{{source}}}}} is not supported (docker's functions "
                                "and Go's if, range, with and builtins are)")
        if word in ("if", "range", "with"):
            node, i = _block(template, parts, i, word, source[len(word):].strip(), in_range)
            nodes.append(node)
            continue
        if word in ("break", "continue"):
            if source != word:
                raise TemplateError(f"--format {template!r}: {{{{{source}}}}}: {word} takes nothing")
            if not in_range:
                raise TemplateError(f"--format {template!r}: {{{{{word}}}}} outside {{{{range}}}}")
            nodes.append((word,))
            i += 1
            continue
        nodes.append(("out", _pipeline(template, source)))
        i += 1
    if not top:
        raise TemplateError(f"--format {template!r}: an if, range or with has no {{{{end}}}}")
    return nodes, i


def _block(template: str, parts: list[Any], i: int, word: str, source: str, in_range: bool) -> tuple[Any, int]:
    if not source:
        raise TemplateError(f"--format {template!r}: {{{{{word}}}}} without a pipeline")
    pipe = _pipeline(template, source, declare=word == "range" and 2 or 1)
    body, i = _body(template, parts, i + 1, in_range=in_range or word == "range")
    otherwise: list[Any] = []
    close = parts[i][1]
    if close.split(None, 1)[0] == "else":
        rest = close[4:].strip()
        if rest:  # else if / else with (of an if or a with): a block of its own, closed by this one's end
            chained = rest.split(None, 1)[0]
            if chained not in ("if", "with") or word == "range":
                raise TemplateError(f"--format {template!r}: {{{{{close}}}}}: else, else if or else with expected")
            node, i = _block(template, parts, i, chained, rest[len(chained):].strip(), in_range)
            return (word, pipe, body, [node]), i
        otherwise, i = _body(template, parts, i + 1, in_range=in_range)
        close = parts[i][1]
        if close != "end":
            raise TemplateError(f"--format {template!r}: {{{{{close}}}}} after an else: {{{{end}}}} expected")
    elif close != "end":
        raise TemplateError(f"--format {template!r}: {{{{{close}}}}}: end takes nothing")
    return (word, pipe, body, otherwise), i + 1


def _tokens(template: str, source: str) -> list[tuple[str, Any, bool]]:
    """(kind, value, spaced: whether blank space came before it)."""
    out: list[tuple[str, Any, bool]] = []
    i, n = 0, len(source)
    spaced = True
    while i < n:
        c = source[i]
        if c in " \t\r\n":
            spaced = True
            i += 1
            continue
        start = i
        if c == "(" or c == ")" or c == "|" or c == ",":
            out.append(({"(": "lparen", ")": "rparen", "|": "pipe", ",": "comma"}[c], c, spaced))
            i += 1
        elif source.startswith(":=", i):
            out.append(("declare", ":=", spaced))
            i += 2
        elif c == "=" and not source.startswith("==", i):
            out.append(("assign", "=", spaced))
            i += 1
        elif c == '"':
            i += 1
            while i < n and source[i] != '"' and source[i] != "\n":
                i += 2 if source[i] == "\\" else 1
            if i >= n or source[i] == "\n":
                raise TemplateError(f"--format {template!r}: a string is not closed: {source[start:]}")
            i += 1
            out.append(("value", _unquote(template, source[start:i]), spaced))
        elif c == "`":
            close = source.find("`", i + 1)
            if close < 0:
                raise TemplateError(f"--format {template!r}: a raw string is not closed: {source[start:]}")
            out.append(("value", source[i + 1:close], spaced))
            i = close + 1
        elif c == "'":
            close = i + 1
            while close < n and source[close] != "'":
                close += 2 if source[close] == "\\" else 1
            text = _unquote(template, source[i:close + 1]) if close < n else ""
            if close >= n or len(text) != 1:
                raise TemplateError(f"--format {template!r}: a character constant is malformed: {source[start:]}")
            out.append(("value", ord(text), spaced))
            i = close + 1
        elif c.isdigit() or c in "+-." and source[i + 1:i + 2].isdigit() or source.startswith(("+.", "-."), i):
            i += 1
            while i < n and (source[i].isalnum() or source[i] in "._" or source[i] in "+-" and source[i - 1] in "eEpP"):
                i += 1
            out.append(("value", _number(template, source[start:i]), spaced))
        elif c == "." or c == "$":
            i += 1
            while i < n and (source[i].isalnum() or source[i] in "_."):
                i += 1
            word = source[start:i]
            if word not in (".", "$") and (".." in word or word.endswith(".")):
                raise TemplateError(f"--format {template!r}: {word}: a field is .Name or .Name.Sub")
            out.append(("var" if c == "$" else "field", word, spaced))
        elif c.isalpha() or c == "_":
            while i < n and (source[i].isalnum() or source[i] == "_"):
                i += 1
            word = source[start:i]
            kind, value = {"true": ("value", True), "false": ("value", False), "nil": ("nil", None)}.get(
                word, ("ident", word))
            out.append((kind, value, spaced))
        else:
            raise TemplateError(f"--format {template!r}: {source!r}: unexpected {c!r}")
        spaced = False
    return out


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"', "'": "'"}


def _unquote(template: str, text: str) -> str:
    """A Go string literal's (or, in single quotes, a rune's) value: \\n, \\xHH, \\ooo, \\uHHHH..."""
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1:i + 2]
        width = {"x": 2, "u": 4, "U": 8}.get(e, 3 if e in "01234567" and e else 0)
        digits = body[i + 2:i + 2 + width] if e in "xuU" else body[i + 1:i + 1 + width]
        if e in _ESCAPES and not (e == "'" and text[0] == '"') and not (e == '"' and text[0] == "'"):
            out.append(_ESCAPES[e])
            i += 2
        elif width and len(digits) == width and all(d in ("01234567" if e not in "xuU" else "0123456789abcdefABCDEF")
                                                     for d in digits):
            code = int(digits, 8 if e not in "xuU" else 16)
            if code > 0x10FFFF or e in "uU" and 0xD800 <= code < 0xE000 or e not in "uU" and code > 255:
                raise TemplateError(f"--format {template!r}: {text}: a string Go cannot read")
            out.append(chr(code))
            i += (2 if e in "xuU" else 1) + width
        else:
            raise TemplateError(f"--format {template!r}: {text}: a string Go cannot read")
    return "".join(out)


def _number(template: str, text: str) -> int | float:
    plain = text.replace("_", "")
    try:
        if plain.lstrip("+-").lower().startswith(("0x", "0o", "0b")):
            return int(plain, 0)
        if plain.lstrip("+-").isdigit():  # Go's 010 is octal, as strconv.ParseInt(text, 0, 64) reads it
            digits = plain.lstrip("+-")
            return int(plain, 8 if len(digits) > 1 and digits[0] == "0" else 10)
        number = float(plain)
    except ValueError:
        raise TemplateError(f"--format {template!r}: {text}: not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise TemplateError(f"--format {template!r}: {text}: not a number")
    return number


def _pipeline(template: str, source: str, declare: int = 1) -> Any:
    """("pipe", names declared, "declare" | "assign" | "", [commands]); a command is a list of
    operands; an operand is ("field", chain) | ("var", name, chain) | ("value", v) |
    ("ident", name) | ("paren", pipe, chain)."""
    tokens = _tokens(template, source)
    names: list[str] = []
    how = ""
    # $x := ..., $i, $v := ... (range only)
    for j in (1, 3):
        if len(tokens) > j and tokens[j][0] in ("declare", "assign") and all(
                tokens[k][0] == "var" for k in range(0, j, 2)) and (j == 1 or tokens[1][0] == "comma"):
            if j == 3 and declare < 2:
                raise TemplateError(f"--format {template!r}: {{{{{source}}}}}: two variables are range's")
            names = [tokens[k][1] for k in range(0, j, 2)]
            if any("." in name for name in names):
                raise TemplateError(f"--format {template!r}: {{{{{source}}}}}: a variable is $name")
            how = tokens[j][0]
            tokens = tokens[j + 1:]
            break
    commands, rest = _commands(template, source, tokens, 0)
    if rest != len(tokens):
        raise TemplateError(f"--format {template!r}: {{{{{source}}}}}: unexpected {tokens[rest][1]!r}")
    return ("pipe", names, how, commands)


def _commands(template: str, source: str, tokens: list[Any], i: int) -> tuple[list[Any], int]:
    commands: list[Any] = []
    command: list[Any] = []
    while i < len(tokens):
        kind, value, spaced = tokens[i]
        if kind == "rparen":
            break
        if kind == "pipe":
            if not command:
                raise TemplateError(f"--format {template!r}: {{{{{source}}}}}: a | with nothing before it")
            commands.append(command)
            command = []
            i += 1
            continue
        if kind == "lparen":
            inner, i = _commands(template, source, tokens, i + 1)
            if i >= len(tokens) or tokens[i][0] != "rparen":
                raise TemplateError(f"--format {template!r}: {{{{{source}}}}}: a ( is not closed")
            i += 1
            chain: list[str] = []
            if i < len(tokens) and tokens[i][0] == "field" and not tokens[i][2] and tokens[i][1] != ".":
                chain = tokens[i][1][1:].split(".")
                i += 1
            if not inner:
                raise TemplateError(f"--format {template!r}: {{{{{source}}}}}: () holds nothing")
            command.append(("paren", ("pipe", [], "", inner), chain))
            continue
        if kind in ("declare", "assign", "comma"):
            raise TemplateError(f"--format {template!r}: {{{{{source}}}}}: unexpected {value!r}")
        if kind == "field":
            command.append(("field", [] if value == "." else value[1:].split(".")))
        elif kind == "var":
            name, _, chain_text = value.partition(".")
            command.append(("var", name, chain_text.split(".") if chain_text else []))
        elif kind == "ident":
            if value in _CONTROL:
                raise TemplateError(f"--format {template!r}: {{{{{source}}}}}: {value} cannot be in a pipeline")
            if value not in _FUNCTIONS:
                raise TemplateError(f"--format {template!r}: {{{{{source}}}}}: function {value!r} not defined")
            command.append(("ident", value))
        else:
            command.append(("value", value))
        i += 1
    if not command:
        raise TemplateError(f"--format {template!r}: {{{{{source}}}}}: an empty pipeline or command")
    commands.append(command)
    return commands, i


def _row_fields(nodes: list[Any], dot_is_row: bool) -> Iterator[str]:
    """The first name of each field read of the row: ``.Name`` where the dot is still the row,
    ``$.Name`` anywhere."""
    for node in nodes:
        if isinstance(node, str) or node[0] in ("break", "continue"):
            continue
        yield from _pipe_fields(node[1], dot_is_row)
        if node[0] == "out":
            continue
        yield from _row_fields(node[2], dot_is_row and node[0] == "if")
        yield from _row_fields(node[3], dot_is_row)


def _pipe_fields(pipe: Any, dot_is_row: bool) -> Iterator[str]:
    for command in pipe[3]:
        for operand in command:
            if operand[0] == "field" and operand[1] and dot_is_row:
                yield operand[1][0]
            elif operand[0] == "var" and operand[1] == "$" and operand[2]:
                yield operand[2][0]
            elif operand[0] == "paren":
                yield from _pipe_fields(operand[1], dot_is_row)


# ---- execution ---------------------------------------------------------------------------------

class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Run:
    def __init__(self, template: str) -> None:
        self.template = template

    def fail(self, why: str) -> TemplateError:
        return TemplateError(f"--format {self.template!r}: {why}")

    def nodes(self, nodes: list[Any], dot: Any, scope: list[tuple[str, Any]], out: list[str]) -> None:
        mark = len(scope)
        try:
            for node in nodes:
                if isinstance(node, str):
                    out.append(node)
                elif node[0] == "out":
                    value = self.pipe(node[1], dot, scope)
                    if not node[1][2]:  # a declaration prints nothing
                        out.append(_printed(value))
                elif node[0] == "break":
                    raise _Break
                elif node[0] == "continue":
                    raise _Continue
                elif node[0] == "range":
                    self.range(node, dot, scope, out)
                else:
                    inner = len(scope)
                    value = self.pipe(node[1], dot, scope)
                    if truth(value):
                        self.nodes(node[2], value if node[0] == "with" else dot, scope, out)
                    else:
                        self.nodes(node[3], dot, scope, out)
                    del scope[inner:]
        finally:
            del scope[mark:]

    def range(self, node: Any, dot: Any, scope: list[tuple[str, Any]], out: list[str]) -> None:
        pipe = node[1]
        value = self.pipe(("pipe", [], "", pipe[3]), dot, scope)
        if value is None:
            items: list[tuple[Any, Any]] = []
        elif isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value, key=_sort_key)]
        elif isinstance(value, list):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(k, k) for k in range(value)]
        else:
            raise self.fail(f"range can't iterate over {_printed(value)}")
        if not items:
            self.nodes(node[3], dot, scope, out)
            return
        names = pipe[1]
        for key, element in items:
            mark = len(scope)
            if len(names) == 2:
                scope += [(names[0], key), (names[1], element)]
            elif names:
                scope.append((names[0], element))
            try:
                self.nodes(node[2], element, scope, out)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del scope[mark:]

    def pipe(self, pipe: Any, dot: Any, scope: list[tuple[str, Any]]) -> Any:
        _, names, how, commands = pipe
        value: Any = _NOTHING
        for command in commands:
            value = self.command(command, dot, scope, value)
        if how == "declare":
            scope.append((names[0], value))
        elif how == "assign":
            for k in range(len(scope) - 1, -1, -1):
                if scope[k][0] == names[0]:
                    scope[k] = (names[0], value)
                    break
            else:
                raise self.fail(f"undefined variable: {names[0]}")
        return value

    def command(self, command: list[Any], dot: Any, scope: list[tuple[str, Any]], piped: Any) -> Any:
        head = command[0]
        if head[0] == "ident" and head[1] in ("and", "or"):  # Go's: they stop at the argument that decides
            name, operands = head[1], command[1:]
            if not operands and piped is _NOTHING:
                raise self.fail(f"{name}: at least one argument")
            value = None
            for k, operand in enumerate(operands):
                value = self.operand(operand, dot, scope)
                if truth(value) == (name == "or") or (k == len(operands) - 1 and piped is _NOTHING):
                    return value
            return piped if piped is not _NOTHING else value
        if head[0] != "ident":
            if len(command) == 1 and piped is _NOTHING:
                return self.operand(head, dot, scope)
            if not (head[0] in ("field", "var") and (head[1] if head[0] == "field" else head[2])):
                raise self.fail(f"can't give an argument to a non-function {_shown(head)}")
        args = [self.operand(op, dot, scope) for op in command[1:]] + ([] if piped is _NOTHING else [piped])
        if head[0] != "ident":
            return self.method(head, dot, scope, args)
        name = head[1]
        try:
            return _FUNCTIONS[name](*args)
        except TemplateError as e:
            raise self.fail(str(e)) from None
        except (TypeError, AttributeError):
            raise self.fail(f"error calling {name}: wrong number or type of arguments "
                            f"({', '.join(go_value(a) for a in args)[:200]})") from None
        except (ValueError, KeyError, IndexError) as e:
            raise self.fail(f"error calling {name}: {e}") from None

    def method(self, head: Any, dot: Any, scope: list[tuple[str, Any]], args: list[Any]) -> Any:
        chain = head[1] if head[0] == "field" else head[2]
        owner = self.chain(dot if head[0] == "field" else self.variable(head[1], scope), chain[:-1])
        name = chain[-1]
        method = owner.methods.get(name) if isinstance(owner, Row) else None
        if method is None:
            raise self.fail(f".{'.'.join(chain)}: {name} is a field, not a method: it takes no arguments")
        try:
            return method(*args)
        except TypeError as e:
            raise self.fail(f".{'.'.join(chain)}: {e}") from None

    def operand(self, operand: Any, dot: Any, scope: list[tuple[str, Any]]) -> Any:
        kind = operand[0]
        if kind == "value":
            return operand[1]
        if kind == "field":
            return self.chain(dot, operand[1])
        if kind == "var":
            return self.chain(self.variable(operand[1], scope), operand[2])
        if kind == "paren":
            return self.chain(self.pipe(operand[1], dot, scope), operand[2])
        if kind == "ident":  # a function named alone: called with nothing
            return self.command([operand], dot, scope, _NOTHING)
        return None  # nil

    def variable(self, name: str, scope: list[tuple[str, Any]]) -> Any:
        for key, value in reversed(scope):
            if key == name:
                return value
        raise self.fail(f"undefined variable: {name}")

    def chain(self, value: Any, names: list[str]) -> Any:
        for k, name in enumerate(names):
            if isinstance(value, Row) and name in value.methods and name not in value:
                try:
                    value = value.methods[name]()
                except TypeError:
                    raise self.fail(f".{'.'.join(names[: k + 1])}: {name} takes an argument "
                                    f"({{{{.{name} \"KEY\"}}}})") from None
                continue
            if not isinstance(value, dict):
                path = "." + ".".join(names[: k + 1])
                raise self.fail(f"{path}: {name!r} is not a field here")
            if isinstance(value, _GoMap):  # a key of a map: one it has not is the zero value, as Go's
                value = value.get(name, _zero(value))
                continue
            key = name if name in value else next((x for x in value if x.lower() == name.lower()), None)
            if key is None:
                raise self.fail(f".{'.'.join(names[: k + 1])}: no field {name!r}")
            value = value[key]
            if key in MAP_FIELDS and isinstance(value, dict) and not isinstance(value, Row):
                value = _GoMap(value)
        return value


# The fields of docker's documents that are Go maps, not structs: a key they lack reads as the
# zero value ({{.Config.Labels.missing}} is "" under docker), where a struct's unknown field is
# an error (and is refused here).
MAP_FIELDS = frozenset(("Labels", "Options", "Networks", "Ports", "Volumes", "ExposedPorts", "DriverOpts",
                        "Containers", "Data", "Sysctls", "StorageOpt", "Tmpfs", "Annotations"))


class _GoMap(dict):  # type: ignore[type-arg]
    """A map of docker's document (``MAP_FIELDS``), as it was reached."""


def _zero(mapping: dict[str, Any]) -> Any:
    """A map's zero value: "" for one of strings (labels, options), nil for anything else."""
    return "" if all(isinstance(v, str) for v in mapping.values()) else None


_NOTHING = object()  # no value piped in


def _shown(operand: Any) -> str:
    if operand[0] == "field":
        return "." + ".".join(operand[1])
    if operand[0] == "var":
        return operand[1] + "".join("." + n for n in operand[2])
    return repr(operand[1]) if operand[0] == "value" else "(...)"


def _sort_key(key: Any) -> tuple[int, Any]:
    return (0, key) if isinstance(key, (int, float)) and not isinstance(key, bool) else (1, str(key))


def truth(value: Any) -> bool:
    """Go's: false, 0, nil and empty strings, lists and maps are false."""
    if value is _NOTHING or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, dict)):
        return bool(value)
    return True


# ---- values as Go prints them ------------------------------------------------------------------

def _printed(value: Any) -> str:
    """An action's value printed: as %v, and "<no value>" for none."""
    return "<no value>" if value is None or value is _NOTHING else go_value(value)


def go_value(value: Any) -> str:
    """Go's %v of a JSON value: map[k:v] (keys sorted), [a b], true, 1e+06, <nil>."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_value(k)}:{go_value(value[k])}" for k in sorted(value, key=_sort_key)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    return str(value)


def _go_float(value: float) -> str:
    """strconv's 'g' of the shortest digits (%v): an exponent below -4 or from 6 on (1e+06)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    from decimal import Decimal

    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    shown = "".join(map(str, digits))
    point = len(shown) + int(exponent)  # digits before the decimal point
    power = point - 1
    if power < -4 or power >= 6:
        mantissa = shown[0] + ("." + shown[1:] if len(shown) > 1 else "")
        text = f"{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    elif point <= 0:
        text = "0." + "0" * -point + shown
    elif point >= len(shown):
        text = shown + "0" * (point - len(shown))
    else:
        text = shown[:point] + "." + shown[point:]
    return ("-" if sign else "") + text


def _quote(text: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(c)])
        elif c.isprintable():
            out.append(c)
        elif ord(c) < 0x80:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return "".join(out) + '"'


def _json(value: Any) -> str:
    """docker's ``json``: encoding/json's compact form, HTML left as it is."""
    import json

    if isinstance(value, Row):
        value = dict(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ---- functions ---------------------------------------------------------------------------------

def _printf(form: Any, *args: Any) -> str:
    """fmt.Sprintf's verbs docker's users write: %v %s %d %q %t %x %X %o %f %e %g %c %%, with
    flags, width and precision."""
    if not isinstance(form, str):
        raise TemplateError(f"printf: the format is {go_value(form)}, not a string")
    out, i, used = [], 0, 0
    while i < len(form):
        c = form[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < len(form) and form[j] in "-+# 0":
            j += 1
        while j < len(form) and form[j].isdigit():
            j += 1
        if j < len(form) and form[j] == ".":
            j += 1
            while j < len(form) and form[j].isdigit():
                j += 1
        if j >= len(form):
            out.append("%!(NOVERB)")
            break
        spec, verb = form[i + 1:j], form[j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_formatted(spec, verb, args[used]))
        used += 1
    if used < len(args):
        out.append("%!(EXTRA " + ", ".join(f"{_go_type(a)}={go_value(a)}" for a in args[used:]) + ")")
    return "".join(out)


def _go_type(value: Any) -> str:
    if isinstance(value, list):
        return "[]string" if value and all(isinstance(v, str) for v in value) else "[]interface {}"
    if isinstance(value, dict):
        return "map[string]string" if value and all(isinstance(v, str) for v in value.values()) else \
            "map[string]interface {}"
    return {bool: "bool", int: "int", float: "float64", str: "string"}.get(type(value), "<nil>")


def _formatted(spec: str, verb: str, value: Any) -> str:
    flags = "".join(c for c in spec.split(".")[0] if c in "-+# 0" and not c.isdigit())
    width = "".join(c for c in spec.split(".")[0].lstrip("-+# ") if c.isdigit())
    precision = spec.split(".")[1] if "." in spec else None
    align = "<" if "-" in flags else ""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if verb in "dxXobc" and isinstance(value, int) and not isinstance(value, bool):
        if verb == "c":
            return _padded(chr(value), flags, width)
        sign = "+" if "+" in flags else ""
        zero = "0" if "0" in flags and not align else ""
        alt = "#" if "#" in flags and verb in "xXob" else ""
        return format(value, f"{align}{sign}{alt}{zero}{width}{verb}")
    if verb in "eEfFgG" and number:
        sign = "+" if "+" in flags else ""
        zero = "0" if "0" in flags and not align else ""
        if verb in "gG" and precision is None:
            text = _go_float(float(value))
            return _padded(("+" if sign and value >= 0 else "") + (text.upper() if verb == "G" else text), flags, width)
        return format(float(value), f"{align}{sign}{zero}{width}.{precision or 6}{verb}")
    if verb == "t" and isinstance(value, bool):
        return _padded("true" if value else "false", flags, width)
    if verb == "q" and isinstance(value, str):
        return _padded(_quote(value), flags, width)
    if verb == "q" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return _padded("[" + " ".join(_quote(v) for v in value) + "]", flags, width)
    if verb == "T":
        return _padded(_go_type(value), flags, width)
    if verb == "x" and isinstance(value, str):
        return _padded(value.encode().hex(), flags, width)
    if verb == "s" and (isinstance(value, (int, float)) or value is None):  # (bool is an int)
        return f"%!s({_go_type(value)}={go_value(value)})" if value is not None else "%!s(<nil>)"
    if verb in "vs":
        text = value if isinstance(value, str) else go_value(value)
        if precision is not None:
            text = text[: int(precision or 0)]
        return _padded(text, flags, width)
    return f"%!{verb}({_go_type(value)}={go_value(value)})"


def _padded(text: str, flags: str, width: str) -> str:
    if not width:
        return text
    return text.ljust(int(width)) if "-" in flags else text.rjust(int(width))


def _print(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    for k, a in enumerate(args):
        if k and not isinstance(a, str) and not isinstance(args[k - 1], str):
            out.append(" ")
        out.append(a if isinstance(a, str) else go_value(a))
    return "".join(out)


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            if not isinstance(key, str):
                raise TemplateError(f"index: a map's key is a string, not {go_value(key)}")
            if key in item:
                item = item[key]
            else:  # the zero value of the map's elements: "" for labels, nil for anything else
                item = _zero(item)
        elif isinstance(item, (list, str)):
            if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key < len(item):
                raise TemplateError(f"index: index out of range: {go_value(key)}")
            item = item[key]
        else:
            raise TemplateError(f"index: can't index item of type {_go_type(item)}")
    return item


def _slice(item: Any, *bounds: Any) -> Any:
    if not isinstance(item, (list, str)):
        raise TemplateError(f"slice: can't slice item of type {_go_type(item)}")
    if len(bounds) > 2 or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
        raise TemplateError("slice: at most two integer indexes (a third is for capacity: not here)")
    low, high = (list(bounds) + [0, len(item)][len(bounds):])[:2]
    if not 0 <= low <= high <= len(item):
        raise TemplateError(f"slice: index out of range: [{low}:{high}] of {len(item)}")
    return item[low:high]


def _length(item: Any) -> int:
    if isinstance(item, (str, list, dict)):
        return len(item)
    raise TemplateError(f"len of type {_go_type(item)}")


def _comparable(a: Any, b: Any, name: str) -> None:
    """Go's basic kinds: an int and a float are not compared (1 and 1.0 are "incompatible")."""
    kinds = [("str" if isinstance(x, str) else _go_type(x)) for x in (a, b)]
    if kinds[0] != kinds[1] and None not in (a, b):
        raise TemplateError(f"{name}: incompatible types for comparison: {go_value(a)} and {go_value(b)}")


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("eq: missing argument for comparison")
    for b in others:
        _comparable(a, b, "eq")
        if a == b:
            return True
    return False


def _ordered(name: str, test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        _comparable(a, b, name)
        if not isinstance(a, (int, float, str)) or isinstance(a, bool):
            raise TemplateError(f"{name}: invalid type for comparison: {go_value(a)}")
        return test(a, b)

    return compare


def _truncate(text: Any, length: Any) -> str:
    text = text if isinstance(text, str) else go_value(text)
    return text if len(text) < length else text[:length]


def _title(text: str) -> str:
    """strings.Title: each word's first letter upper case; ASCII's letters, digits and _ make a
    word, any other ASCII ends one, and beyond ASCII only a space does."""
    out, previous = [], " "
    for c in text:
        separator = not (previous.isalnum() or previous == "_") if previous.isascii() else previous.isspace()
        out.append(c.upper() if separator else c)
        previous = c
    return "".join(out)


def _html(*args: Any) -> str:
    """text/template's html: <, >, &, ' and " escaped, NUL as U+FFFD."""
    text = _print(*args)
    for plain, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("'", "&#39;"), ('"', "&#34;"),
                           ("\0", "\ufffd")):
        text = text.replace(plain, escaped)
    return text


def _urlquery(*args: Any) -> str:
    """text/template's urlquery: url.QueryEscape of the operands printed."""
    from urllib.parse import quote_plus

    return quote_plus(_print(*args), safe="-_.~")


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "and": lambda *a: a[-1], "or": lambda *a: a[-1],  # (their own evaluation: _Run.command)
    "not": lambda a: not truth(a),
    "len": _length, "index": _index, "slice": _slice,
    "eq": _eq, "ne": lambda a, b: not _eq(a, b),
    "lt": _ordered("lt", lambda a, b: a < b), "le": _ordered("le", lambda a, b: a <= b),
    "gt": _ordered("gt", lambda a, b: a > b), "ge": _ordered("ge", lambda a, b: a >= b),
    "print": _print, "printf": _printf, "html": _html, "urlquery": _urlquery, "println": lambda *a: " ".join(
        x if isinstance(x, str) else go_value(x) for x in a) + "\n",
    # docker's (cli/templates): json, split, join, title, lower, upper, pad, truncate
    "json": _json,
    "split": lambda text, sep: text.split(sep) if sep else list(text),
    "join": lambda items, sep: sep.join(x if isinstance(x, str) else go_value(x) for x in items),
    "title": _title, "lower": lambda text: text.lower(), "upper": lambda text: text.upper(),
    "pad": lambda text, before, after: " " * before + text + " " * after if text else text,
    "truncate": _truncate,
}
