"""`charter scrutinize`: where a constitution conflicts with itself, before a model finds out.

  findings   Finding (check, severity, clause ids, message, quotes, proposed fix) and its record form
  clauses    the constitution's clauses as comparable texts, with what orders them (tiers)
  polarity   a text's stance (does it ask for or against something) and its stance-free form
  static     checks with no model: duplicates and contradictions by sentence embeddings, defaults
             against principles, tensions no tier settles, missing examples, untiered principles,
             clauses nothing exercises
  probes     trade-off probes with an engine: scenarios that force a choice between two clauses,
             answered under each clause alone and under the whole constitution, judged
  report     Markdown and HTML, ordered by severity
  run        the command as a library call: static checks, probes, records in the run store, report
"""
