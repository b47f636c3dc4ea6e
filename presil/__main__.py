from presil.cli import main

raise SystemExit(main())
