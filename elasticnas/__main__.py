from elasticnas.cli import main

raise SystemExit(main())
