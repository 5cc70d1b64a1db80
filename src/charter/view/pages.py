"""The viewer's HTML: Jinja templates with autoescaping on, so every record text is escaped.

No external fonts, scripts or stylesheets: the pages work offline and load nothing but themselves.
Rows are links (keyboard: Tab reaches each, Enter follows it).
"""

from __future__ import annotations

import json

from jinja2 import BaseLoader, Environment, select_autoescape

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#fafafa}
header{background:#22313f;color:#fff;padding:.6rem 1rem}header a{color:#fff;margin-right:1rem}
main{padding:1rem;max-width:1200px}table{border-collapse:collapse;width:100%;background:#fff}
td,th{border:1px solid #dde2e6;padding:.3rem .5rem;vertical-align:top;text-align:left}
th{background:#eef1f4}pre{white-space:pre-wrap;margin:0;font:13px/1.4 ui-monospace,monospace}
.muted{color:#66707a}.pill{display:inline-block;background:#e3ebf3;border-radius:9px;padding:0 .5rem;margin:1px}
.bad{color:#a01e1e}.good{color:#1e6b2c}form.filters{display:flex;flex-wrap:wrap;gap:.5rem;margin:.5rem 0}
a:focus,tr:focus-within{outline:2px solid #2f6fbd}.cols{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
nav.pages a{margin-right:.6rem}
"""

LAYOUT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{{ title }} · charter view</title><style>{{ style }}</style></head><body>
<header><a href="/">charter view</a>{% if run is not none %}<a href="/run/{{ run.index }}">{{ run.name }}</a>
<a href="/run/{{ run.index }}/records">records</a><a href="/run/{{ run.index }}/datasets">datasets</a>
<a href="/run/{{ run.index }}/evals">evals</a><a href="/run/{{ run.index }}/training">training</a>{% endif %}</header>
<main><h1>{{ title }}</h1>{% block body %}{% endblock %}</main></body></html>"""

TEMPLATES = {
    "message.html": """{% extends "layout.html" %}{% block body %}<p>{{ detail }}</p>{% endblock %}""",
    "index.html": """{% extends "layout.html" %}{% block body %}
<table><tr><th>run</th><th>folder</th><th>constitution</th><th>records</th><th>stages done</th></tr>
{% for r in runs %}<tr><td><a href="/run/{{ r.index }}">{{ r.name }}</a></td><td>{{ r.folder }}</td>
<td>{{ r.manifest.get("constitution_hash", "") }}</td><td>{{ counts[r.index] }}</td>
<td>{{ r.manifest.get("done", {})|length }}</td></tr>{% endfor %}</table>
{% if runs|length > 1 %}<p><a href="/compare?a=0&b=1">Compare {{ runs[0].name }} with {{ runs[1].name }}</a></p>{% endif %}
{% endblock %}""",
    "run.html": """{% extends "layout.html" %}{% block body %}
<p>constitution <b>{{ run.manifest.get("constitution_hash", "?") }}</b>, charter {{ run.manifest.get("charter_version", "?") }},
created {{ created }}</p>
<h2>Stages</h2><table><tr><th>stage</th><th>seconds</th><th>what it did</th></tr>
{% for name, done in stages %}<tr><td>{{ name }}</td><td>{{ done.get("seconds", "") }}</td>
<td>{% for k, v in done.items() if k not in ("seconds", "metrics", "base", "trained") %}<span class="pill">{{ k }}: {{ v|short }}</span>{% endfor %}</td></tr>{% endfor %}</table>
<h2>Engines</h2><table>{% for role, fp in run.manifest.get("engines", {}).items() %}<tr><td>{{ role }}</td><td>{{ fp }}</td></tr>
{% else %}<tr><td class="muted">engines are recorded on each record (see a record's provenance)</td></tr>{% endfor %}</table>
<h2>Records by stage</h2><table><tr><th>stage</th><th>kind</th><th>records</th></tr>
{% for stage, kind, n in stage_counts %}<tr><td><a href="{{ query.link(run.index, stage=stage) }}">{{ stage }}</a></td><td>{{ kind }}</td><td>{{ n }}</td></tr>{% endfor %}</table>
<h2>Constitution</h2>{% if clauses %}<table><tr><th>clause</th><th>kind</th><th>text</th><th>records</th></tr>
{% for c in clauses %}<tr id="clause-{{ c.id }}"><td><a href="{{ query.link(run.index, clause=c.id) }}">{{ c.id }}</a></td>
<td>{{ c.kind }}</td><td>{{ c.text }}</td><td>{{ clause_counts.get(c.id, 0) }}</td></tr>{% endfor %}</table>
{% else %}<p class="muted">The constitution file ({{ constitution_path }}) is not readable here; clause ids seen in the records:</p>
<p>{% for cid, n in clause_counts.items() %}<a class="pill" href="{{ query.link(run.index, clause=cid) }}">{{ cid }} ({{ n }})</a>{% endfor %}</p>{% endif %}
<h2>Settings</h2><pre>{{ settings }}</pre>{% endblock %}""",
    "records.html": """{% extends "layout.html" %}{% block body %}
<form class="filters" method="get" action="/run/{{ run.index }}/records">
<label>stage <select name="stage"><option value="">any</option>{% for s in stages %}<option{% if s == query.stage %} selected{% endif %}>{{ s }}</option>{% endfor %}</select></label>
<label>clause <select name="clause"><option value="">any</option>{% for c in clauses %}<option{% if c == query.clause %} selected{% endif %}>{{ c }}</option>{% endfor %}</select></label>
{% for name, values in run.filter_values.items() %}<label>{{ name }} <select name="{{ name }}"><option value="">any</option>
{% for v in values %}<option{% if fields.get(name) == v %} selected{% endif %}>{{ v }}</option>{% endfor %}</select></label>{% endfor %}
<label>search <input name="q" value="{{ query.search or '' }}"></label><button type="submit">filter</button></form>
<p id="count">{{ total }} records{% if total %}, {{ first }}–{{ last }} shown{% endif %}</p>
<table><tr><th>stage</th><th>kind</th><th>clauses</th><th>text</th></tr>
{% for r in records %}<tr><td>{{ r.stage }}</td><td>{{ r.kind }}{% if r.data.side %} · {{ r.data.side }}{% endif %}</td>
<td>{% for c in r.clause_ids %}<span class="pill">{{ c }}</span>{% endfor %}</td>
<td><a href="/run/{{ run.index }}/record/{{ r.key }}">{{ (r.data.prompt or r.data.text or r.key)|gist|truncate(160) }}</a></td></tr>{% endfor %}</table>
<nav class="pages">{% if query.page > 1 %}<a href="{{ query.link(run.index, page=query.page - 1) }}" rel="prev">previous</a>{% endif %}
{% if last < total %}<a href="{{ query.link(run.index, page=query.page + 1) }}" rel="next">next</a>{% endif %}</nav>{% endblock %}""",
    "record.html": """{% extends "layout.html" %}{% block body %}
<p>{{ record.stage }} · {{ record.kind }} · {% for c in record.clause_ids %}<a class="pill" href="/run/{{ run.index }}#clause-{{ c }}">{{ c }}</a>{% endfor %}
· key <code>{{ record.key }}</code></p>
{% if record.data.prompt %}<h2>Prompt</h2><pre id="prompt">{{ record.data.prompt|text }}</pre>{% endif %}
{% if critique_chain %}<h2>Critique chain</h2><table id="critique-chain"><tr><th>round</th><th>step</th><th>principle</th><th>text</th></tr>
{% for r in critique_chain %}<tr{% if r.key == record.key %} class="current"{% endif %}><td>{{ r.data.round }}</td><td><a href="/run/{{ run.index }}/record/{{ r.key }}">{{ r.data.step }}</a></td>
<td>{% if r.data.principle_id %}<a class="pill" href="/run/{{ run.index }}#clause-{{ r.data.principle_id }}">{{ r.data.principle_id }}</a>{% endif %}</td><td><pre>{{ r.data.text|text }}</pre></td></tr>{% endfor %}</table>{% endif %}
{% if record.data.extra and record.data.extra.transcript %}<h2>Conversation</h2><table id="transcript"><tr><th>turn</th><th>who</th><th>message</th><th>rule checks on this reply</th></tr>
{% set ns = namespace(reply=0) %}{% for m in record.data.extra.transcript %}{% if m.role == "assistant" %}{% set ns.reply = ns.reply + 1 %}{% endif %}<tr><td>{{ loop.index }}</td><td>{{ m.role }}</td><td><pre>{{ m.content|text }}</pre></td>
<td>{% if m.role == "assistant" %}{% for c in record.data.extra.checks or [] %}{% if c.reply == ns.reply %}<span class="{{ 'good' if c.passed else 'bad' }}">{{ "passed" if c.passed else "FAILED" }}: {{ c.what or c.rule }}</span><br>{% endif %}{% endfor %}{% endif %}</td></tr>{% endfor %}</table>{% endif %}
{% if record.data.judge %}<h2>Judge</h2>{% for ex in record.data.judge %}<div class="judge"><p>verdict <b>{{ ex.verdict }}</b>{% if ex.probs %} · {{ ex.probs|text }}{% endif %}</p>
<h3>judge's prompt</h3><pre class="judge-prompt">{{ ex.prompt|text }}</pre><h3>judge's reply</h3><pre>{{ ex.reply|text }}</pre></div>{% endfor %}{% endif %}
{% if judgments %}<h2>Feedback model's questions</h2><table id="judgments"><tr><th>principle</th><th>order</th><th>P(first better)</th><th>question</th></tr>
{% for j in judgments %}<tr><td>{{ j.data.principle_id }}</td><td>{{ j.data.order }}</td><td>{{ j.data.p_first if j.data.p_first is not none else "abstained: " ~ j.data.reason }}</td>
<td><pre class="judge-prompt">{{ j.data.question|text|truncate(1200) }}{% if j.data.assistant_prefix %}
{{ j.data.assistant_prefix }}{% endif %}</pre></td></tr>{% endfor %}</table>{% endif %}
{% for name in chain %}{% if record.data[name] %}<h2>{{ name }}</h2><pre class="chain">{{ record.data[name]|text }}</pre>{% endif %}{% endfor %}
{% if related %}<h2>Same prompt: {{ related|length }} more record(s)</h2><table><tr><th>stage</th><th>kind</th><th>text</th></tr>
{% for r in related %}<tr><td>{{ r.stage }}</td><td>{{ r.kind }}{% if r.data.side %} · {{ r.data.side }}{% endif %}{% if r.data.provenance %} · {{ r.data.provenance.engine_name }}{% endif %}</td>
<td><a href="/run/{{ run.index }}/record/{{ r.key }}">{{ (r.data.answer or r.data.text or r.data.chosen or r.key)|gist|truncate(200) }}</a></td></tr>{% endfor %}</table>{% endif %}
<h2>Every field</h2><table>{% for k, v in record.data.items() %}<tr><th>{{ k }}</th><td><pre>{{ v|text }}</pre></td></tr>{% endfor %}</table>
{% endblock %}""",
    "datasets.html": """{% extends "layout.html" %}{% block body %}
<table><tr><th>dataset</th><th>rows</th><th>columns</th></tr>{% for d in datasets %}
<tr><td><a href="/run/{{ run.index }}/datasets/{{ d.name }}">{{ d.name }}</a></td><td>{{ d.rows }}</td><td>{{ d.columns|join(", ") }}</td></tr>
{% else %}<tr><td class="muted">no datasets exported yet</td></tr>{% endfor %}</table>{% endblock %}""",
    "dataset.html": """{% extends "layout.html" %}{% block body %}
<p id="count">{{ total }} rows, {{ first }}–{{ last }} shown</p><table><tr><th>#</th><th>record</th>{% for c in shown %}<th>{{ c }}</th>{% endfor %}</tr>
{% for i, row in rows %}<tr><td>{{ i }}</td><td>{% if row.id %}<a href="/run/{{ run.index }}/record/{{ row.id }}">{{ row.id[:12] }}</a>{% endif %}</td>
{% for c in shown %}<td><pre>{{ row[c]|text|truncate(400) }}</pre></td>{% endfor %}</tr>{% endfor %}</table>
<nav class="pages">{% if page > 1 %}<a href="?page={{ page - 1 }}" rel="prev">previous</a>{% endif %}{% if last < total %}<a href="?page={{ page + 1 }}" rel="next">next</a>{% endif %}</nav>{% endblock %}""",
    "evals.html": """{% extends "layout.html" %}{% block body %}
{% if gate %}<p id="gate" class="{{ 'bad' if gate.failed else 'good' }}">Regression gate ({{ before_label }} → {{ after_label }}, threshold {{ gate.threshold }}):
<b>{{ "failed" if gate.failed else "passed" }}</b></p>
<table><tr><th>suite</th><th>metric</th><th>group</th><th>{{ before_label }}</th><th>{{ after_label }}</th><th>delta</th><th>status</th></tr>
{% for row in gate.rows %}<tr><td><a href="#suite-{{ row.suite }}">{{ row.suite }}</a></td><td>{{ row.metric }}</td><td>{{ row.group }}</td>
<td>{{ row.before|est }}</td><td>{{ row.after|est }}</td><td>{{ row.delta|est }}</td><td class="{{ 'bad' if row.status == 'regressed' else ('good' if row.status == 'improved' else '') }}">{{ row.status }}{% if row.too_few %} (too few){% endif %}</td></tr>{% endfor %}</table>
{% else %}<p class="muted">No base and trained evals in this run to compare.</p>{% endif %}
{% for suite, items in suites %}<h2 id="suite-{{ suite }}">{{ suite }}: each prompt, {{ models|join(" vs ") }}</h2>
<table><tr><th>item</th><th>prompt</th>{% for m in models %}<th>{{ m }}</th>{% endfor %}</tr>
{% for item in items %}<tr><td>{{ item.id }}<br>{% for c in item.clauses %}<span class="pill">{{ c }}</span>{% endfor %}</td><td>{{ item.prompt|truncate(240) }}</td>
{% for m in models %}<td>{% set f = item.by_model.get(m) %}{% if f %}<a href="/run/{{ run.index }}/record/{{ f.key }}">{{ f.data.answer|truncate(200) }}</a>
<div class="muted">{% for k, v in f.data.labels.items() %}{{ k }}={{ v }} {% endfor %}{% for k, v in f.data.scores.items() %}{{ k }}={{ v|num }} {% endfor %}</div>{% endif %}</td>{% endfor %}</tr>{% endfor %}</table>{% endfor %}
{% endblock %}""",
    "training.html": """{% extends "layout.html" %}{% block body %}
{% for t in trainers %}<h2>{{ t.name }}</h2><p>{{ t.points|length }} logged steps; final loss {{ t.points[-1][1]|num if t.points else "n/a" }}{% if t.settings %}; {% for k in ("learning_rate", "max_steps", "batch_size", "padding_free") %}{{ k }} {{ t.settings.get(k) }} {% endfor %}{% endif %}</p>
{{ t.svg|safe }}{% else %}<p class="muted">No training logs in this run.</p>{% endfor %}{% endblock %}""",
    "compare.html": """{% extends "layout.html" %}{% block body %}
<p>{{ a.name }} ({{ a_label }}) against {{ b.name }} ({{ b_label }}), per suite and clause; intervals are 95% bootstrap.</p>
{% if gate %}<p id="gate" class="{{ 'bad' if gate.failed else 'good' }}">Gate: <b>{{ "failed" if gate.failed else "passed" }}</b></p>
<table><tr><th>suite</th><th>metric</th><th>clause / group</th><th>{{ a.name }}</th><th>{{ b.name }}</th><th>delta</th><th>status</th></tr>
{% for row in gate.rows %}<tr><td>{{ row.suite }}</td><td>{{ row.metric }}</td><td>{{ row.group }}</td><td>{{ row.before|est }}</td><td>{{ row.after|est }}</td><td>{{ row.delta|est }}</td><td>{{ row.status }}</td></tr>{% endfor %}</table>{% else %}<p class="muted">{{ missing }}</p>{% endif %}
<h2>Examples that moved</h2><table id="moved"><tr><th>suite</th><th>item</th><th>prompt</th><th>{{ a.name }}</th><th>{{ b.name }}</th></tr>
{% for m in moved %}<tr><td>{{ m.suite }}</td><td>{{ m.item }}</td><td>{{ m.prompt|truncate(200) }}</td>
<td><a href="/run/{{ a.index }}/record/{{ m.a.key }}">{{ m.a_score }}</a> {{ m.a.data.answer|truncate(160) }}</td>
<td><a href="/run/{{ b.index }}/record/{{ m.b.key }}">{{ m.b_score }}</a> {{ m.b.data.answer|truncate(160) }}</td></tr>{% else %}<tr><td colspan="5" class="muted">no item changed its score</td></tr>{% endfor %}</table>
{% endblock %}""",
}


def _text(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=1, ensure_ascii=False, default=str)


def _gist(value) -> str:
    """A one-line view of a prompt or answer: a message list shows its last message's content."""
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", ""))
    return _text(value) if value is not None else ""


def _short(value) -> str:
    text = _text(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _num(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _estimate(estimate) -> str:
    if estimate is None or estimate.value is None:
        return "n/a"
    interval = f" [{estimate.low:.2f}, {estimate.high:.2f}]" if estimate.low is not None else ""
    return f"{estimate.value:.2f}{interval} (n={estimate.n})"


def environment() -> Environment:
    templates = {"layout.html": LAYOUT, **TEMPLATES}

    class Loader(BaseLoader):
        def get_source(self, env, template):
            return templates[template], template, lambda: True

    env = Environment(loader=Loader(), autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters.update(text=_text, short=_short, num=_num, est=_estimate, gist=_gist)
    env.globals["style"] = STYLE
    return env


def loss_svg(points: list[tuple[float, float]], width: int = 640, height: int = 200) -> str:
    """A training curve as inline SVG (no script, nothing fetched): step against loss."""
    if not points:
        return ""
    steps = [p[0] for p in points]
    losses = [p[1] for p in points]
    low, high = min(losses), max(losses)
    span_x, span_y = (max(steps) - min(steps)) or 1, (high - low) or 1
    pad = 30

    def x(step):
        return pad + (step - min(steps)) / span_x * (width - 2 * pad)

    def y(loss):
        return height - pad - (loss - low) / span_y * (height - 2 * pad)

    line = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points)
    return (f'<svg role="img" aria-label="loss by step" width="{width}" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg" style="background:#fff;border:1px solid #dde2e6">'
            f'<polyline fill="none" stroke="#2f6fbd" stroke-width="2" points="{line}"/>'
            f'<text x="{pad}" y="15" font-size="12">loss {high:.3f} (top) to {low:.3f} (bottom)</text>'
            f'<text x="{width - pad}" y="{height - 8}" font-size="12" text-anchor="end">step {max(steps):g}</text>'
            f'</svg>')
