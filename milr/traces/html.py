"""Rendering of milr's static HTML pages (run report, sweep report, study report) from Jinja2 templates.

Every page extends `templates/base.html`: one document skeleton, one Content-Security-Policy, one
stylesheet. Pages are self-contained files that open from disk: the default policy (`CSP`) lets only
inline styles and `data:` images load, so a page can never fetch anything. A page that needs a small
script passes `csp=page_csp(script)`, which allows exactly that script by its SHA-256 and nothing
else (no network either way).

Text enters a page one way only: every `{{ value }}` is redacted (`milr.traces.redaction`), then
HTML-escaped (quotes included, so it is safe inside attributes too). Values that are already HTML,
built here from numbers and escaped text (an inline SVG, a word diff, a data URL), are passed as
`markupsafe.Markup` and left alone. Undefined names are errors (`StrictUndefined`), not empty strings.

Blocks of `base.html` a page may fill: `title` (the document title), `style` (page CSS after the
shared CSS), `content` (the body). Context `csp` replaces the default policy.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import functools
import hashlib
import html
import json
from dataclasses import dataclass, field

import jinja2
from markupsafe import Markup

from milr.traces.redaction import redact, secret_values

# No script, no external anything: only inline styles and data-URL images may load.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


# The secret values of the environment while a page renders: read once per page, not once per
# value (a report has hundreds of values, and each read walks all of os.environ).
_PAGE_SECRETS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("page_secrets", default=None)


def escape_text(value: object) -> Markup:
    """Redacted and HTML-escaped text (quotes included): what every `{{ value }}` goes through."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(redact(str(value), _PAGE_SECRETS.get())))


@contextlib.contextmanager
def one_secrets_read():
    """Within: `escape_text` redacts the environment's secrets as read on entry (nested: the outer read)."""
    if _PAGE_SECRETS.get() is not None:
        yield
        return
    page = _PAGE_SECRETS.set(secret_values())
    try:
        yield
    finally:
        _PAGE_SECRETS.reset(page)


def fmt_score(value: float | None, digits: int = 3) -> str:
    """A score with fixed digits; an abstention (None) as a dash."""
    return "—" if value is None else f"{value:.{digits}f}"


def pretty_json(data: object) -> str:
    """Indented JSON for a <pre> block (still escaped and redacted on output)."""
    return json.dumps(data, indent=1, default=str)


def data_url(png: bytes) -> Markup:
    """A PNG as a `data:` URL (base64 needs no escaping, and redaction never touches it)."""
    return Markup("data:image/png;base64," + base64.b64encode(png).decode("ascii"))


def script_hash(script: str) -> str:
    """The CSP source that allows exactly this inline script, e.g. `'sha256-...'`."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def page_csp(script: str | None = None) -> str:
    """The default policy, plus the one inline `script` when given (still no network)."""
    return CSP if script is None else f"{CSP}; script-src {script_hash(script)}"


@functools.cache
def environment() -> jinja2.Environment:
    """The one Jinja2 environment: templates shipped in `milr/traces/templates/`, autoescape on for
    .html and .svg, undefined names raise, every output value redacted and escaped."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("milr.traces", "templates"),
        autoescape=jinja2.select_autoescape(["html", "svg"]),
        undefined=jinja2.StrictUndefined,
        finalize=escape_text,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # the templates ship with the package: no stat of each file per page
    )
    env.filters["score"] = fmt_score
    env.filters["pretty_json"] = pretty_json
    return env


def template_source(name: str) -> str:
    """The text of a shipped template file (e.g. a stylesheet or script), unrendered."""
    env = environment()
    assert env.loader is not None  # set in environment()
    source, _, _ = env.loader.get_source(env, name)
    return source


def render(template_name: str, **context) -> str:
    """Render a shipped template. `csp` defaults to `CSP` (see the module docstring)."""
    context.setdefault("csp", CSP)
    with one_secrets_read():
        return environment().get_template(template_name).render(**context)


# ----------------------------------------------------------------------------- inline SVG charts
SVG_TAGS = frozenset({"line", "polyline", "circle", "text", "rect"})


@dataclass(frozen=True)
class SvgShape:
    """One element of an inline SVG chart. `attrs` names come from code; values are escaped."""

    tag: str
    attrs: dict = field(default_factory=dict)
    text: object = None  # the content of a <text>
    title: object = None  # a tooltip, written right after the element


def svg_shape(tag: str, text: object = None, title: object = None, **attrs) -> SvgShape:
    """A chart element; `stroke_width=2` becomes `stroke-width="2"`, floats are written with 1 decimal."""
    if tag not in SVG_TAGS:
        raise ValueError(f"svg_shape: tag {tag!r} is not one of {sorted(SVG_TAGS)}")
    clean = {k.rstrip("_").replace("_", "-"): f"{v:.1f}" if isinstance(v, float) else v for k, v in attrs.items()}
    return SvgShape(tag, clean, text, title)


def svg_chart(shapes: list[SvgShape], *, width: int, height: int, label: str, css_class: str = "curve") -> Markup:
    """An inline <svg> (no xmlns: inline SVG in HTML needs none, and the page names no address)."""
    return Markup(
        render("chart.svg", shapes=shapes, width=width, height=height, label=label, css_class=css_class).strip()
    )
