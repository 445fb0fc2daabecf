"""The ``bottlecheck`` command line: each command parses its options, calls the library, formats.

:mod:`.main` is the group and its ``classify``, ``serve`` and ``info`` commands (the console entry
point, ``bottlecheck.cli.main:main``); :mod:`.watch`, :mod:`.train` (``train``, ``evaluate``) and
:mod:`.review` hold one command each; :mod:`.options` the options several commands share.
"""
