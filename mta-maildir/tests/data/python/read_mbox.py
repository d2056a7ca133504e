# Lists an mbox with Python's mailbox.mbox, an independent reader: one line per message,
# "hex(From_ line text)<TAB>hex(bytes including the From_ line)".
# Usage: read_mbox.py MBOX
import mailbox
import sys

mb = mailbox.mbox(sys.argv[1], create=False)
for key in mb.keys():
    frm = mb.get_message(key).get_from().encode("latin-1", "surrogateescape")
    sys.stdout.write("%s\t%s\n" % (frm.hex(), mb.get_bytes(key, from_=True).hex()))
