from sw.cli import entry

entry()
