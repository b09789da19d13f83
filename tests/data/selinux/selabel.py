#!/usr/bin/python3
# The oracle: libselinux's own answer (selabel_lookup_raw, python3-selinux) for each path.
# Usage: selabel.py FILE_CONTEXTS < "KIND<TAB>PATH" lines (KIND: file, dir, fifo, link, any)
# (PATH with "\\" and "\n" escaped), prints "KIND<TAB>PATH<TAB>LABEL",
# LABEL "<<none>>" when libselinux gives none (ENOENT).
# Opens FILE_CONTEXTS as selabel_open(SELABEL_CTX_FILE) with SELABEL_OPT_PATH, which also
# reads FILE_CONTEXTS.homedirs, .local, .subs_dist and .subs beside it.
import codecs
import errno
import stat
import sys

import selinux

MODES = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "fifo": stat.S_IFIFO,
         "link": stat.S_IFLNK, "any": 0}

opt = selinux.selinux_opt()
opt.type = selinux.SELABEL_OPT_PATH
opt.value = sys.argv[1]
handle = selinux.selabel_open(selinux.SELABEL_CTX_FILE, opt, 1)
for line in sys.stdin:
    kind, path = line.rstrip("\n").split("\t", 1)
    shown = path
    path = codecs.decode(path, "unicode_escape")
    try:
        label = selinux.selabel_lookup_raw(handle, path, MODES[kind])[1]
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
        label = "<<none>>"
    print(f"{kind}\t{shown}\t{label}")
