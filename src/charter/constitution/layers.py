"""Layering: base constitution, then an operator overlay, then a user overlay.

An overlay may switch an adjustable default that allows its principal (to the values it allows),
add principles and traits, append context, and waive a protection that names its principal.
Nobody may remove, disable or reword a hard line or a protection; the user can never do more than
the operator allows, and the operator can grant users no more than it may do itself.

The effective constitution carries the permissions that remain (a default's `adjustable_by`,
`allowed_values`, and `locked_by` naming the overlay that took a permission away), so what
`charter show` prints and what the next layer is checked against are the same thing.
"""

from __future__ import annotations

from charter.constitution.model import Constitution, Default, Overlay, id_key
from charter.errors import LayerError


def resolve(base: Constitution, operator: Overlay | None = None, user: Overlay | None = None,
            similar=None, crossing=None) -> Constitution:
    """The effective constitution. Raises LayerError naming the clause id and the layer.

    `similar(sentence) -> clause ids` (serve passes the guard's embedding neighbours) widens the
    check of overlay text by meaning beyond the clauses' own words, and `crossing(sentence) -> hard
    line id or None` (serve passes its input guard) reads each sentence as a request
    (overlay_meaning.py)."""
    effective = base
    if operator is not None:
        principal = _principal(base, "operator")
        effective = _apply(effective, operator, principal, similar, crossing)
        effective = _set_user_permissions(effective, operator, principal)
    if user is not None:
        principal = _principal(base, "user")
        _refuse_user_additions(user, principal)
        effective = _apply(effective, user, principal, similar, crossing)
    return effective


def _principal(base: Constitution, role: str) -> str:
    found = base.principal_for(role)  # type: ignore[arg-type]
    if found is None:
        declared = ", ".join(p.id for p in base.principals)
        raise LayerError(role, role, f"this constitution declares no {role} principal (principals: {declared}); "
                                     f"it takes no {role} overlay")
    return found.id


def _apply(current: Constitution, overlay: Overlay, principal: str, similar=None, crossing=None) -> Constitution:
    from charter.constitution.overlay_meaning import refuse_weakening

    hard_ids = {h.id for h in current.hard_lines}
    protection_ids = {p.id for p in current.protections}
    _refuse_hard_line_changes(overlay, principal, hard_ids)
    _refuse_protection_changes(overlay, principal, current)
    defaults = _switch_defaults(current, overlay, principal, hard_ids)
    # Ids compare as they read (model.id_key): a look-alike of a hard line's id is that hard line.
    hard_keys = {id_key(h): h for h in hard_ids | protection_ids}
    existing = {id_key(c.id): c.id for clauses in current.clauses_by_kind().values() for c in clauses}
    for clause in (*overlay.principles, *overlay.traits, *overlay.hard_lines):
        key = id_key(clause.id)
        if key in hard_keys:
            kind = "hard line" if hard_keys[key] in hard_ids else "protection"
            raise LayerError(clause.id, principal, f"looks like the {kind} '{hard_keys[key]}'; a clause cannot "
                                                   f"take a {kind}'s id, even spelled differently")
        if key in existing:
            raise LayerError(clause.id, principal, f"already exists (as '{existing[key]}'); an overlay may add "
                                                   f"clauses, not replace them")
        existing[key] = clause.id
    for clause_id in (*overlay.remove, *overlay.disable):
        raise LayerError(clause_id, principal, "overlays cannot remove or disable clauses; they may only switch "
                                               "adjustable defaults and add clauses or context")
    # What the overlay says must not undo in words what it may not undo by id.
    refuse_weakening(current, overlay, principal, similar, crossing)
    label = f"{principal}:{overlay.name}" if overlay.name else principal
    return current.model_copy(update={
        "defaults": defaults,
        "principles": current.principles + overlay.principles,
        "traits": current.traits + overlay.traits,
        "hard_lines": current.hard_lines + overlay.hard_lines,
        "context": current.context + ((f"[{label}] {overlay.context.strip()}",) if overlay.context.strip() else ()),
        "layers": current.layers + (label,),
        "waived": current.waived + tuple(f"{pid}:{label}" for pid in overlay.waive),
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
    for protection_id in overlay.waive:
        if protection_id in hard_ids:
            raise LayerError(protection_id, layer, "is a hard line; no one can waive it")


def _refuse_protection_changes(overlay: Overlay, principal: str, current: Constitution) -> None:
    protections = {p.id: p for p in current.protections}
    for clause_id in (*overlay.remove, *overlay.disable):
        if clause_id in protections:
            verb = "removed" if clause_id in overlay.remove else "disabled"
            who = _waivers(protections[clause_id].waivable_by)
            raise LayerError(clause_id, principal, f"is a protection and cannot be {verb} by any layer; {who}")
    for clause in (*overlay.principles, *overlay.traits, *overlay.hard_lines):
        if clause.id in protections:
            raise LayerError(clause.id, principal, "is a protection; a clause with its id cannot replace it")
    for default_id in overlay.defaults:
        if default_id in protections:
            raise LayerError(default_id, principal, "is a protection, not an adjustable default; it cannot be "
                                                    "switched")
    for protection_id in overlay.waive:
        if protection_id not in protections:
            raise LayerError(protection_id, principal, f"is not a protection of this constitution; protections "
                                                       f"are {sorted(protections)}")
        if principal not in protections[protection_id].waivable_by:
            raise LayerError(protection_id, principal, f"may not be waived by the {principal}; "
                                                       f"{_waivers(protections[protection_id].waivable_by)}")


def _waivers(waivable_by: tuple[str, ...]) -> str:
    if not waivable_by:
        return "no one may waive it"
    return f"only {' or '.join(waivable_by)} may waive it, for themselves"


def _switch_defaults(current: Constitution, overlay: Overlay, principal: str,
                     hard_ids: set[str]) -> tuple[Default, ...]:
    by_id = {d.id: d for d in current.defaults}
    for default_id, value in overlay.defaults.items():
        if default_id in hard_ids:
            continue  # refused above with the hard line named
        if default_id not in by_id:
            raise LayerError(default_id, principal,
                             f"is not a default of this constitution; defaults are {sorted(by_id)}")
        default = by_id[default_id]
        if value not in default.choices:
            raise LayerError(default_id, principal,
                             f"{value!r} is not an allowed value; choose one of {sorted(default.choices)}")
        if principal not in default.adjustable_by:
            raise LayerError(default_id, principal, _why_locked(default, principal))
        if not default.may_choose(principal, value):
            allowed = sorted(default.allowed_values[principal])
            raise LayerError(default_id, principal, f"the {principal} may set it only to {allowed}, not {value!r}")
    return tuple(
        d.model_copy(update={"value": overlay.defaults[d.id]}) if d.id in overlay.defaults else d
        for d in current.defaults
    )


def _why_locked(default: Default, principal: str) -> str:
    if principal in default.locked_by:
        return (f"may not be adjusted by the {principal}: the overlay '{default.locked_by[principal]}' "
                f"locked it (it is not in that overlay's user_adjustable)")
    who = ", ".join(default.adjustable_by)
    return f"may not be adjusted by the {principal} layer (adjustable by: {who})"


def _set_user_permissions(current: Constitution, operator: Overlay, principal: str) -> Constitution:
    """Apply the operator's `user_adjustable` (narrowing) and `grant_users` (widening, up to its own)."""
    user = current.principal_for("user")
    if user is None:
        if operator.user_adjustable is not None or operator.grant_users:
            raise LayerError("user_adjustable", principal, "this constitution declares no user principal")
        return current
    label = f"{principal}:{operator.name}" if operator.name else principal
    by_id = {d.id: d for d in current.defaults}
    for default_id in operator.user_adjustable or ():
        if default_id not in by_id or (user.id not in by_id[default_id].adjustable_by
                                       and default_id not in operator.grant_users):
            raise LayerError(default_id, principal,
                             "cannot let users adjust it: the base constitution does not allow users to adjust "
                             "this default (or it does not exist); use grant_users to grant what you may adjust")
    updated: dict[str, Default] = {}
    for default_id, values in operator.grant_users.items():
        if default_id not in by_id:
            raise LayerError(default_id, principal, f"cannot be granted: it is not a default of this "
                                                    f"constitution; defaults are {sorted(by_id)}")
        default = by_id[default_id]
        if principal not in default.adjustable_by:
            raise LayerError(default_id, principal, "cannot be granted to users: the operator may not adjust it "
                                                    "itself, and can grant no more than it may do")
        own = default.allowed_values.get(principal)
        granted = tuple(values) if values is not None else own
        for value in granted or ():
            if value not in default.choices or (own is not None and value not in own):
                raise LayerError(default_id, principal, f"cannot grant users the value {value!r}: the operator "
                                                        f"may choose only {sorted(own or default.choices)}")
        limits = {k: v for k, v in default.allowed_values.items() if k != user.id}
        had = user.id in default.adjustable_by
        before = default.allowed_values.get(user.id)  # None: any value (when `had`)
        if had and before is None:
            granted = None  # users could already choose any value: a grant only ever widens
        elif had and granted is not None:
            granted = tuple(dict.fromkeys((*before, *granted)))
        if granted is not None:
            limits[user.id] = granted
        adjustable = default.adjustable_by + (() if had else (user.id,))
        updated[default_id] = default.model_copy(update={"adjustable_by": adjustable, "allowed_values": limits})
    if operator.user_adjustable is not None:
        keep = set(operator.user_adjustable) | set(operator.grant_users)
        for default in current.defaults:
            default = updated.get(default.id, default)
            if user.id in default.adjustable_by and default.id not in keep:
                updated[default.id] = default.model_copy(update={
                    "adjustable_by": tuple(p for p in default.adjustable_by if p != user.id),
                    "allowed_values": {k: v for k, v in default.allowed_values.items() if k != user.id},
                    "locked_by": {**default.locked_by, user.id: label},
                })
    if not updated:
        return current
    return current.model_copy(update={"defaults": tuple(updated.get(d.id, d) for d in current.defaults)})


def _refuse_user_additions(user: Overlay, principal: str) -> None:
    # Users adjust defaults; anything that would add to or reshape the constitution is the operator's job.
    if user.principles or user.traits or user.hard_lines:
        clause = (user.principles or user.traits or user.hard_lines)[0]
        raise LayerError(clause.id, principal, "users may only switch adjustable defaults, not add clauses")
    if user.user_adjustable is not None or user.grant_users:
        raise LayerError("user_adjustable", principal, "only an operator can decide what users may adjust")
    if user.context.strip():
        raise LayerError("context", principal, "users may only switch adjustable defaults, not add context")
