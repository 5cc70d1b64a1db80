"""Guards trained from the constitution: `charter guard data`, `charter guard train`, and the
classifier `charter serve --guard` uses as its fast pass.

- transforms.py  what attackers do to a request (frames, encodings, split turns), as data
- sources.py     the seed requests per hard line and the benign ones, and their paraphrases
- dataset.py     the labelled set, stored as records, split by source example
- features.py    what the classifier reads (the text with hidden readings revealed), embedded
- classifier.py  one score per hard line for inputs and for answer prefixes; calibration; save/load
- evaluate.py    block rates per transformation, false blocks per benign kind, ROC, streaming stops
- report.py      the Markdown/HTML report beside the trained guard
"""
