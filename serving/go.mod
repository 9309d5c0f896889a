module github.com/modelship/modelship/serving

go 1.25.0
