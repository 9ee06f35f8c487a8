from lift_asgi.local.cli import main

raise SystemExit(main())
