from distlmk.cli import main

raise SystemExit(main())
