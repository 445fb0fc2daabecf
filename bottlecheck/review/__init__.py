"""``bottlecheck review``: a person confirms the doubtful answers of a classify run, and the model learns from them.

The parts: :mod:`.store` (the labels file beside the results, written atomically and merged
under a lock so two browsers lose nothing), :mod:`.queue` (reading the rows and ordering them:
unknown, then least confident, then a sample of the confident), :mod:`.export` (the folders
``bottlecheck train`` reads, the corrected tops and the held-back list) and :mod:`.blueprint`
(the page and its JSON API, mounted by ``bottlecheck review`` and by ``bottlecheck serve``).
"""
