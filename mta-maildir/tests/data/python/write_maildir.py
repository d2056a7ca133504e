# Writes a maildir with Python's mailbox.Maildir from the given message files, then prints
# what Python itself reads back: "folder<TAB>key<TAB>subdir<TAB>flags<TAB>hex(bytes)".
# Every second message goes in as a MaildirMessage moved to cur/ with flags; the others are
# added as raw bytes to new/. The first message is also added to folder "Work.Projects".
# Usage: write_maildir.py MAILDIR FILE...
import mailbox
import sys

FLAGS = ["RS", "F", "DST", "P"]
md = mailbox.Maildir(sys.argv[1], factory=None, create=True)
for i, path in enumerate(sys.argv[2:]):
    with open(path, "rb") as f:
        raw = f.read()
    if i % 2 == 0:
        md.add(raw)
    else:
        msg = mailbox.MaildirMessage(raw)
        msg.set_subdir("cur")
        msg.set_flags(FLAGS[(i // 2) % len(FLAGS)])
        md.add(msg)
sub = md.add_folder("Work.Projects")
with open(sys.argv[2], "rb") as f:
    sub.add(f.read())
for name, box in (("", md), ("Work.Projects", sub)):
    for key in sorted(box.keys()):
        msg = box.get_message(key)
        data = box.get_bytes(key)
        sys.stdout.write("%s\t%s\t%s\t%s\t%s\n" % (name, key, msg.get_subdir(), msg.get_flags(), data.hex()))
