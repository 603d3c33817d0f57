"""`python -m tradebot_operator [--namespace NS | --all-namespaces]`; `... crd` prints the CRD."""

from tradebot_operator.run import main

raise SystemExit(main())
