# Lists a maildir (or one of its Maildir++ folders) with Python's mailbox.Maildir, an
# independent reader: one line per message, "key<TAB>subdir<TAB>flags<TAB>hex(bytes)".
# Usage: read_maildir.py MAILDIR [FOLDER]
import mailbox
import sys

md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
if len(sys.argv) > 2:
    md = md.get_folder(sys.argv[2])
for key in sorted(md.keys()):
    msg = md.get_message(key)
    data = md.get_bytes(key)
    sys.stdout.write("%s\t%s\t%s\t%s\n" % (key, msg.get_subdir(), msg.get_flags(), data.hex()))
