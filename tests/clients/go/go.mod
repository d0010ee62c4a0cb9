module mxjob.test/clients/go

go 1.19

require mxjob.test/client v0.0.0

replace mxjob.test/client => ../../../target/clients/go
