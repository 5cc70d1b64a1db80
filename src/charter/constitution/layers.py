"""Layering: base constitution, then an operator overlay, then a user overlay.

An overlay may switch an adjustable default that allows its layer, add principles and traits,
and append context. Nobody may remove, disable or reword a hard line; the user layer can never
do more than the operator allows.
"""

from __future__ import annotations

from charter.constitution.model import Constitution, Default, Overlay, id_key
from charter.errors import LayerError


def resolve(base: Constitution, operator: Overlay | None = None, user: Overlay | None = None) -> Constitution:
    """The effective constitution. Raises LayerError naming the clause id and the layer."""
    effective = base
    user_allowed = {d.id for d in base.defaults if "user" in d.adjustable_by}
    if operator is not None:
        effective = _apply(effective, operator, "operator", allowed=_adjustable(base, "operator"))
        if operator.user_adjustable is not None:
            for default_id in operator.user_adjustable:
                if default_id not in user_allowed:
                    raise LayerError(
                        default_id, "operator",
                        "cannot let users adjust it: the base constitution does not allow users to adjust "
                        "this default (or it does not exist)",
                    )
            user_allowed = set(operator.user_adjustable)
    if user is not None:
        _refuse_user_additions(user)
        effective = _apply(effective, user, "user", allowed=user_allowed)
    return effective


def _adjustable(base: Constitution, layer: str) -> set[str]:
    return {d.id for d in base.defaults if layer in d.adjustable_by}


def _apply(current: Constitution, overlay: Overlay, layer: str, allowed: set[str]) -> Constitution:
    hard_ids = {h.id for h in current.hard_lines}
    _refuse_hard_line_changes(overlay, layer, hard_ids)
    defaults = _switch_defaults(current, overlay, layer, allowed, hard_ids)
    # Ids compare as they read (model.id_key): a look-alike of a hard line's id is that hard line.
    hard_keys = {id_key(h): h for h in hard_ids}
    existing = {id_key(c.id): c.id for clauses in current.clauses_by_kind().values() for c in clauses}
    for clause in (*overlay.principles, *overlay.traits, *overlay.hard_lines):
        key = id_key(clause.id)
        if key in hard_keys:
            raise LayerError(clause.id, layer, f"looks like the hard line '{hard_keys[key]}'; a clause cannot "
                                               f"take a hard line's id, even spelled differently")
        if key in existing:
            raise LayerError(clause.id, layer, f"already exists (as '{existing[key]}'); an overlay may add "
                                               f"clauses, not replace them")
        existing[key] = clause.id
    for clause_id in (*overlay.remove, *overlay.disable):
        raise LayerError(clause_id, layer, "overlays cannot remove or disable clauses; they may only switch "
                                           "adjustable defaults and add clauses or context")
    label = f"{layer}:{overlay.name}" if overlay.name else layer
    return current.model_copy(update={
        "defaults": defaults,
        "principles": current.principles + overlay.principles,
        "traits": current.traits + overlay.traits,
        "hard_lines": current.hard_lines + overlay.hard_lines,
        "context": current.context + ((f"[{label}] {overlay.context.strip()}",) if overlay.context.strip() else ()),
        "layers": current.layers + (label,),
    })


def _refuse_hard_line_changes(overlay: Overlay, layer: str, hard_ids: set[str]) -> None:
    for clause_id in (*overlay.remove, *overlay.disable):
        if clause_id in hard_ids:
            verb = "removed" if clause_id in overlay.remove else "disabled"
            raise LayerError(clause_id, layer, f"is a hard line and cannot be {verb} by any layer")
    for line in overlay.hard_lines:
        if line.id in hard_ids:
            raise LayerError(line.id, layer, "is a hard line and cannot be reworded or redefined by any layer")
    for clause in (*overlay.principles, *overlay.traits):
        if clause.id in hard_ids:
            raise LayerError(clause.id, layer, "is a hard line; a clause with its id cannot replace it")
    for default_id in overlay.defaults:
        if default_id in hard_ids:
            raise LayerError(default_id, layer, "is a hard line, not an adjustable default; it cannot be switched")


def _switch_defaults(current: Constitution, overlay: Overlay, layer: str, allowed: set[str],
                     hard_ids: set[str]) -> tuple[Default, ...]:
    by_id = {d.id: d for d in current.defaults}
    for default_id, value in overlay.defaults.items():
        if default_id not in by_id:
            raise LayerError(default_id, layer, f"is not a default of this constitution; defaults are {sorted(by_id)}")
        if default_id not in allowed:
            raise LayerError(default_id, layer, f"may not be adjusted by the {layer} layer")
        if value not in by_id[default_id].choices:
            raise LayerError(default_id, layer,
                             f"{value!r} is not an allowed value; choose one of {sorted(by_id[default_id].choices)}")
    return tuple(
        d.model_copy(update={"value": overlay.defaults[d.id]}) if d.id in overlay.defaults else d
        for d in current.defaults
    )


def _refuse_user_additions(user: Overlay) -> None:
    # Users adjust defaults; anything that would add to or reshape the constitution is the operator's job.
    if user.principles or user.traits or user.hard_lines:
        clause = (user.principles or user.traits or user.hard_lines)[0]
        raise LayerError(clause.id, "user", "users may only switch adjustable defaults, not add clauses")
    if user.user_adjustable is not None:
        raise LayerError("user_adjustable", "user", "only an operator can decide what users may adjust")
    if user.context.strip():
        raise LayerError("context", "user", "users may only switch adjustable defaults, not add context")
