from node import runtime

runtime.main()
