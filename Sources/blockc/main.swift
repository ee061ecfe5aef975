import Driver

Driver.main()
