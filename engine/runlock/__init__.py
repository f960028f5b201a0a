"""One process writes a run folder at a time.

Two processes writing one output folder interleave their files and logs: two ``engine train``
with the same ``--out`` overwrite each other's checkpoints and append to one ``metrics.jsonl``;
two ``engine label`` runs append to one manifest and label the same images twice. It happens
when a command is started twice by mistake, or when a cluster requeues a job whose first copy
is still running. Each command that writes a run folder holds an advisory lock on
``FOLDER/.lock`` (``fcntl.flock``) while it works, and a second process stops at once with one
line naming the folder and the process that holds it.

The operating system releases the lock when its process ends, however it ends, so a killed run
leaves no stale lock: the next run takes it. A process forked during the run (a DataLoader
worker) closes its copy of the lock at once, so it never holds a folder past its run; one
spawned to write the run (``engine train --processes``' ranks) holds it too, until it ends
(:func:`passed_locks`). The file
itself stays after a run that changed the folder; it holds the holder's pid, host, command and
start time, for the message, and the folder it locked (a hard-linked copy's is told apart).
Where ``flock`` does not exist (Windows) or the file system refuses it, the run goes on
unlocked, as before (the lock file it made then, which locks nothing and holds no record, is
removed when it ends). A folder the run created and left empty (it refused its
input before writing anything) is removed again. A run that failed (an exception, not Ctrl-C or
SIGTERM) having changed nothing but new empty folders (a full disk at a review's first
thumbnail: its ``thumbs/``) removes those folders, unless another shard's lock file there is
held; one that wrote a file keeps every folder. A run that fails before changing a folder that
was there removes the lock file it made, or puts back the lock record of the run before it (a
process that opened the file just before it was removed finds, once it holds the lock, that the
name leads elsewhere, and locks what it leads to). A run that locks a folder it wrote before, or
one holding nothing but hidden files (:func:`wrote_nothing`), removes the temporary files its
killed runs left there (:func:`remove_temporaries`).

The package's modules, lowest first (each imports only those below it):
:mod:`~engine.runlock.holders` (the lock files' name, the locks this process holds, their
records and who holds them: :func:`writer`, :func:`check_alone`), :mod:`~engine.runlock.leftovers`
(the temporary files killed runs left: :func:`remove_temporaries`),
:mod:`~engine.runlock.records` (a record set aside while a rerun writes:
:func:`record_set_aside`), :mod:`~engine.runlock.output_folders` (an output folder's checks:
:func:`check_output_folder`), :mod:`~engine.runlock.lock` (:func:`exclusive`) and
:mod:`~engine.runlock.command` (:func:`holds_lock`, which joins them for a command).
"""

from engine.runlock.command import (
    holds_lock,
)
from engine.runlock.holders import (
    LOCK_NAME,
    FolderInUse,
    _held_by,
    _open_here,
    as_shard,
    check_alone,
    check_not_in_use,
    hold_passed,
    last_writer,
    lockless,
    others_writing,
    passed_locks,
    writer,
    writers,
)
from engine.runlock.leftovers import (
    remove_temporaries,
    temporaries,
    wrote_nothing,
)
from engine.runlock.lock import (
    _own_lock,
    exclusive,
    folders_removed_on_failure,
    missing_folders,
)
from engine.runlock.output_folders import (
    check_not_being_written,
    check_not_in_dataset,
    check_not_in_output,
    check_output_folder,
    places,
    split_folders,
)
from engine.runlock.records import (
    _files,
    earlier_name,
    record_set_aside,
    set_aside_as,
)

__all__ = [
    "FolderInUse",
    "LOCK_NAME",
    "_files",
    "_held_by",
    "_open_here",
    "_own_lock",
    "as_shard",
    "check_alone",
    "check_not_being_written",
    "check_not_in_dataset",
    "check_not_in_output",
    "check_not_in_use",
    "check_output_folder",
    "earlier_name",
    "exclusive",
    "folders_removed_on_failure",
    "hold_passed",
    "holds_lock",
    "last_writer",
    "lockless",
    "missing_folders",
    "others_writing",
    "passed_locks",
    "places",
    "record_set_aside",
    "remove_temporaries",
    "set_aside_as",
    "split_folders",
    "temporaries",
    "writer",
    "writers",
    "wrote_nothing",
]
