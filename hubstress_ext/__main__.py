from hubstress_ext.cli.main import entry

entry()
