"""Where the inputs come from: whatever the user names becomes one ordered iterable of inputs.

:mod:`.discovery` is the one source factory (a photo, a folder, a glob, stdin, a clip, a stream:
what each is and how it is read), which ``classify`` and ``watch`` both call; :mod:`.video` decodes
clips and streams into sampled frames (and writes annotated clips).
"""
