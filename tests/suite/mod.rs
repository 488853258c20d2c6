mod archive;
mod cartesia;
mod clarion;
mod delete;
mod query;
mod reliability;
mod safety;
mod ultravox;
