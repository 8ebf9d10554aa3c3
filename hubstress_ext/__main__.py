from hubstress_ext.cli.main import main

raise SystemExit(main())
